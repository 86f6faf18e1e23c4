//! The API server's operations on the store: what the HTTP side calls, with the rules a real
//! API server applies (status subresources, resourceVersion checks, garbage collection).

use serde_json::{Value, json};

use super::{ApiError, Fake, Hook, Key, State, Subscription, key_of};
use crate::select::Filter;

impl Fake {
    pub(crate) fn api_get(
        &self,
        index: usize,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = (index, namespace.to_owned(), name.to_owned());
        self.state()
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&self.inner.resources[index], name))
    }

    /// The matching objects and the list's resourceVersion.
    pub(crate) fn api_list(&self, index: usize, filter: &Filter) -> (Vec<Value>, u64) {
        let state = self.state();
        let items = state
            .objects
            .iter()
            .filter(|((r, _, _), v)| *r == index && filter.matches(v))
            .map(|(_, v)| v.clone())
            .collect();
        (items, state.rv)
    }

    pub(crate) fn api_create(
        &self,
        index: usize,
        namespace: &str,
        object: Value,
    ) -> Result<Value, ApiError> {
        let resource = &self.inner.resources[index];
        let mut state = self.state();
        let mut object = self.complete(&mut state, index, object, Some(namespace));
        if resource.status_subresource
            && let Some(map) = object.as_object_mut()
        {
            // The API server ignores the status of a create where status is a subresource.
            map.remove("status");
        }
        let key = key_of(index, &object);
        if key.2.is_empty() {
            return Err(ApiError::new(
                422,
                "Invalid",
                "metadata.name: Required value",
                json!({}),
            ));
        }
        if state.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", resource.plural, key.2),
                json!({"name": key.2, "group": resource.group, "kind": resource.plural}),
            ));
        }
        let stored = self.write(&mut state, index, key, "ADDED", Some(object));
        drop(state);
        let hooks: Vec<Hook> = self
            .inner
            .hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(r, _)| *r == index)
            .map(|(_, h)| h.clone())
            .collect();
        for hook in hooks {
            hook(self.clone(), stored.clone());
        }
        Ok(stored)
    }

    /// Applies `change` to the stored object and writes it, with status-subresource rules:
    /// on `/status` only the status changes; on the main resource of a kind with a status
    /// subresource the status stays. `expected_rv` is checked when given.
    pub(crate) fn api_update(
        &self,
        index: usize,
        namespace: &str,
        name: &str,
        status_only: bool,
        expected_rv: Option<&str>,
        change: impl FnOnce(&mut Value) -> Result<(), ApiError>,
    ) -> Result<Value, ApiError> {
        let resource = &self.inner.resources[index];
        if status_only && !resource.status_subresource {
            return Err(ApiError::no_such_path());
        }
        let key = (index, namespace.to_owned(), name.to_owned());
        let mut state = self.state();
        let old = state
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(resource, name))?;
        if let Some(rv) = expected_rv.filter(|rv| !rv.is_empty())
            && old["metadata"]["resourceVersion"].as_str() != Some(rv)
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    resource.plural
                ),
                json!({"name": name, "group": resource.group, "kind": resource.plural}),
            ));
        }
        let mut new = old.clone();
        change(&mut new)?;
        let mut object = if status_only {
            let mut kept = old.clone();
            kept["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            kept
        } else {
            if resource.status_subresource {
                match old.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            new
        };
        // Identity is the server's, whatever the body said.
        object["metadata"]["name"] = old["metadata"]["name"].clone();
        object["metadata"]["namespace"] = old["metadata"]["namespace"].clone();
        object["metadata"]["uid"] = old["metadata"]["uid"].clone();
        object["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
        Ok(self.write(&mut state, index, key, "MODIFIED", Some(object)))
    }

    /// Deletes an object and, unless orphaned, what it owns.
    pub(crate) fn api_delete(
        &self,
        index: usize,
        namespace: &str,
        name: &str,
        orphan: bool,
    ) -> Result<Value, ApiError> {
        let key = (index, namespace.to_owned(), name.to_owned());
        let mut state = self.state();
        let object = state
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&self.inner.resources[index], name))?;
        let deleted = self.write(&mut state, index, key, "DELETED", Some(object));
        if !orphan {
            self.collect_garbage(&mut state, &deleted);
        }
        Ok(deleted)
    }

    fn collect_garbage(&self, state: &mut State, owner: &Value) {
        let Some(uid) = owner["metadata"]["uid"].as_str() else {
            return;
        };
        let owned: Vec<(Key, Value)> = state
            .objects
            .iter()
            .filter(|(_, v)| {
                v["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, object) in owned {
            let index = key.0;
            let deleted = self.write(state, index, key, "DELETED", Some(object));
            self.collect_garbage(state, &deleted);
        }
    }

    /// History after `rv` matching `filter`, and the live feed, taken under one lock so no
    /// change falls between them. `Err` when `rv` is older than the kept history.
    pub(crate) fn subscribe(
        &self,
        index: usize,
        filter: &Filter,
        rv: u64,
    ) -> Result<Subscription, u64> {
        let state = self.state();
        if rv < state.floor {
            return Err(rv);
        }
        let history = state
            .history
            .iter()
            .filter(|c| c.rv > rv && c.resource == index && filter.matches(&c.object))
            .cloned()
            .collect();
        Ok((
            history,
            self.inner.changes.subscribe(),
            self.inner.signals.subscribe(),
        ))
    }
}
