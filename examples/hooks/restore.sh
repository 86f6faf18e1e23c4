#!/bin/sh
# A stand-in for a dataset restore (`pg_restore`, say) into the database infra.sh created. It
# restores once per env and change (FLOTILLA_HOOK_KEY is its idempotency key): run again for the
# same change it does nothing; a new change of the env gets a fresh restore.
set -eu
dataset=${1:?usage: restore.sh DATASET}
dir="${FLOTILLA_HOOK_STATE_DIR:?FLOTILLA_HOOK_STATE_DIR is not set (the command backend sets it)}"

if [ ! -f "$dir/infra.state" ]; then
    echo "restore: $FLOTILLA_ENV has no database (the database hook runs first)" >&2
    exit 1
fi
if [ ! -f "$dataset" ]; then
    echo "restore: no dataset $dataset" >&2
    exit 2
fi
if [ -f "$dir/restored" ] && [ "$(cat "$dir/restored")" = "$FLOTILLA_HOOK_KEY" ]; then
    echo "restore: $dataset was restored for $FLOTILLA_HOOK_KEY already"
    exit 0
fi
database=$(sed -n 's/^database=//p' "$dir/infra.state")
echo "restore: $FLOTILLA_ENV: restoring $(grep -c -v -e "^--" -e "^$" "$dataset") statements of $dataset into $database"
printf '%s\n' "$FLOTILLA_HOOK_KEY" >"$dir/restored"
echo "restore: $FLOTILLA_ENV: done"
