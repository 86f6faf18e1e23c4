//! Splitting an API path into what it addresses.

use crate::resource::Resource;

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `GET /version`.
    Version,
    /// `GET /apis/G/V` or `/api/v1`: discovery.
    GroupVersion { group: String, version: String },
    /// A collection or one object of a registered resource.
    Object {
        resource: usize,
        namespace: Option<String>,
        name: Option<String>,
        subresource: Option<String>,
    },
}

/// Parses `path` against the registered `resources`; `None` for anything else.
pub fn parse(path: &str, resources: &[Resource]) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Some(Target::Version),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return Some(Target::GroupVersion {
            group: group.to_owned(),
            version: version.to_owned(),
        });
    }
    let find = |plural: &str, namespaced: bool| {
        resources.iter().position(|r| {
            r.group == group
                && r.version == version
                && r.plural == plural
                && r.namespaced == namespaced
        })
    };
    let any = |plural: &str| {
        resources
            .iter()
            .position(|r| r.group == group && r.version == version && r.plural == plural)
    };
    // `namespaces/NS/PLURAL/...` when PLURAL is a namespaced resource; otherwise the first
    // segment is itself the resource (cluster-scoped, or namespaced listed across namespaces).
    if let ["namespaces", namespace, plural, tail @ ..] = rest
        && let Some(resource) = find(plural, true)
        && tail.len() <= 2
    {
        return Some(Target::Object {
            resource,
            namespace: Some((*namespace).to_owned()),
            name: tail.first().map(|s| (*s).to_owned()),
            subresource: tail.get(1).map(|s| (*s).to_owned()),
        });
    }
    let [plural, tail @ ..] = rest else {
        return None;
    };
    let resource = any(plural)?;
    if tail.len() > 2 || (resources[resource].namespaced && !tail.is_empty()) {
        return None;
    }
    Some(Target::Object {
        resource,
        namespace: None,
        name: tail.first().map(|s| (*s).to_owned()),
        subresource: tail.get(1).map(|s| (*s).to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources() -> Vec<Resource> {
        vec![
            Resource::job(),
            Resource::pod(),
            Resource::namespace(),
            Resource::argo_application(),
        ]
    }

    fn object(
        resource: usize,
        ns: Option<&str>,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Option<Target> {
        Some(Target::Object {
            resource,
            namespace: ns.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource: sub.map(str::to_owned),
        })
    }

    #[test]
    fn paths_name_collections_objects_and_subresources() {
        let r = resources();
        assert_eq!(
            parse("/apis/batch/v1/namespaces/ci/jobs", &r),
            object(0, Some("ci"), None, None)
        );
        assert_eq!(
            parse("/apis/batch/v1/namespaces/ci/jobs/b1/status", &r),
            object(0, Some("ci"), Some("b1"), Some("status"))
        );
        assert_eq!(
            parse("/api/v1/namespaces/ci/pods/p1/log", &r),
            object(1, Some("ci"), Some("p1"), Some("log"))
        );
        assert_eq!(parse("/api/v1/namespaces", &r), object(2, None, None, None));
        assert_eq!(
            parse("/api/v1/namespaces/ci", &r),
            object(2, None, Some("ci"), None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/ci/status", &r),
            object(2, None, Some("ci"), Some("status"))
        );
        assert_eq!(
            parse("/apis/argoproj.io/v1alpha1/applications", &r),
            object(3, None, None, None)
        );
        assert_eq!(parse("/apis/batch/v1/namespaces/ci/cronjobs", &r), None);
        assert_eq!(parse("/healthz", &r), None);
    }
}
