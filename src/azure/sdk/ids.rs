//! ARM resource ids the port receives as strings.

use crate::azure::errors::AzureError;

/// `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourceId {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
}

impl ResourceId {
    pub(crate) fn parse(
        operation: &str,
        id: &str,
        namespace: &str,
        type_: &str,
    ) -> Result<Self, AzureError> {
        let segs: Vec<&str> = id.trim_matches('/').split('/').collect();
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        match segs.as_slice() {
            [s, sub, g, rg, p, ns, t, name]
                if eq(s, "subscriptions")
                    && eq(g, "resourceGroups")
                    && eq(p, "providers")
                    && eq(ns, namespace)
                    && eq(t, type_)
                    && [sub, rg, name].iter().all(|x| !x.is_empty()) =>
            {
                Ok(ResourceId {
                    subscription: (*sub).to_owned(),
                    resource_group: (*rg).to_owned(),
                    name: (*name).to_owned(),
                })
            }
            _ => Err(AzureError::Rejected {
                operation: operation.to_owned(),
                status: 400,
                code: "InvalidResourceId".into(),
                message: format!(
                    "{id:?} is not a resource id of the form /subscriptions/<id>/resourceGroups/<group>/providers/{namespace}/{type_}/<name>"
                ),
            }),
        }
    }

    /// The id with canonical segment names (the scope role assignments compare against).
    pub(crate) fn canonical(&self, namespace: &str, type_: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{namespace}/{type_}/{}",
            self.subscription, self.resource_group, self.name
        )
    }
}

/// The subscription in a `/subscriptions/{s}/...` path, if any.
pub(crate) fn subscription_in_path(path: &str) -> Option<&str> {
    let mut it = path.trim_start_matches('/').split('/');
    while let Some(seg) = it.next() {
        if seg.eq_ignore_ascii_case("subscriptions") {
            return it.next().filter(|s| !s.is_empty());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_ids_parse_case_insensitively() {
        let id = ResourceId::parse(
            "x",
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv",
            "Microsoft.KeyVault",
            "vaults",
        )
        .unwrap();
        assert_eq!(
            (
                id.subscription.as_str(),
                id.resource_group.as_str(),
                id.name.as_str()
            ),
            ("s", "rg", "kv")
        );
        assert!(
            ResourceId::parse(
                "x",
                "/subscriptions/s/vaults/kv",
                "Microsoft.KeyVault",
                "vaults"
            )
            .is_err()
        );
        assert_eq!(
            subscription_in_path("/subscriptions/abc/providers/x"),
            Some("abc")
        );
    }
}
