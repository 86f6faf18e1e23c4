#!/bin/sh
# A stand-in for `terraform apply` / `terraform destroy` of an env's database: it keeps its state
# in the env's state directory (FLOTILLA_HOOK_STATE_DIR, kept across the env's changes), so
# `create` run again (a new push to the pull request, a redelivery) changes nothing, and
# `destroy` removes exactly what `create` made. With Terraform: `terraform -chdir=infra apply
# -auto-approve -state="$FLOTILLA_HOOK_STATE_DIR/terraform.tfstate" -var env="$FLOTILLA_ENV"`.
set -eu
action=${1:?usage: infra.sh create|destroy}
state="${FLOTILLA_HOOK_STATE_DIR:?FLOTILLA_HOOK_STATE_DIR is not set (the command backend sets it)}/infra.state"
database="db-$FLOTILLA_ENV"

case "$action" in
create)
    if [ -f "$state" ]; then
        echo "infra: $FLOTILLA_ENV: $database exists already ($(grep '^created_by=' "$state")); nothing to change"
        exit 0
    fi
    echo "infra: $FLOTILLA_ENV: creating $database for namespace $FLOTILLA_NAMESPACE (apps $FLOTILLA_APPS; attempt $FLOTILLA_HOOK_ATTEMPT)"
    # Written aside and renamed: a run killed half-way leaves no half state.
    printf 'database=%s\ncreated_by=%s\n' "$database" "$FLOTILLA_HOOK_KEY" >"$state.tmp"
    mv "$state.tmp" "$state"
    echo "infra: $FLOTILLA_ENV: $database created"
    ;;
destroy)
    if [ ! -f "$state" ]; then
        echo "infra: $FLOTILLA_ENV: nothing to destroy"
        exit 0
    fi
    echo "infra: $FLOTILLA_ENV: destroying $database"
    rm -f "$state"
    echo "infra: $FLOTILLA_ENV: $database destroyed"
    ;;
*)
    echo "infra: unknown action $action (create or destroy)" >&2
    exit 64
    ;;
esac
