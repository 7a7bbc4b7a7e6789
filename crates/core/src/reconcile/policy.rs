//! Azure Policy denials (ARM's 403 `RequestDisallowedByPolicy`): which
//! assignment refused a write, and the spec field that makes the account
//! comply. The built-in definitions named here are those of
//! Azure/azure-policy, built-in-policies/policyDefinitions (commit 8f5ad30):
//! `Cosmos DB/Cosmos_PrivateNetworkAccess_AuditDeny.json`,
//! `Cosmos DB/Cosmos_DisableLocalAuth_AuditDeny.json` (1.1.0: accounts with an
//! API capability such as EnableCassandra are exempt),
//! `Cosmos DB/Cosmos_CMK_Deny.json` and `Tags/RequireTag_Deny.json`.

/// "Azure Cosmos DB should disable public network access".
pub const DENY_PUBLIC_NETWORK: &str = "797b37f7-06b8-444c-b1ad-fc62867f335a";
/// "Cosmos DB database accounts should have local authentication methods disabled".
pub const DENY_LOCAL_AUTH: &str = "5450f5bd-9c72-4390-a9c4-a7aba4edfdd2";
/// "Require a tag on resources" (parameter `tagName`).
pub const REQUIRE_TAG: &str = "871b6d14-10aa-478d-b590-94f262ecfa99";
/// "Azure Cosmos DB accounts should use customer-managed keys to encrypt data at rest".
pub const REQUIRE_CMK: &str = "1f905d99-2ab7-462c-a6b0-f709acca6c8f";

/// One assignment that denied a request, as ARM's `additionalInfo` entry of
/// type `PolicyViolation` names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyViolation {
    pub definition_id: String,
    pub definition_display_name: Option<String>,
    pub assignment_id: String,
    pub assignment_display_name: Option<String>,
    pub assignment_scope: Option<String>,
    /// The `tagName` parameter of the assignment, for tag policies.
    pub tag_name: Option<String>,
}

impl PolicyViolation {
    /// The definition's name: the last segment of its id (a GUID for built-ins).
    fn definition_name(&self) -> &str {
        self.definition_id
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
    }

    /// The spec field to set so the account complies, in words.
    pub fn remedy(&self) -> String {
        let name = self.definition_name().to_ascii_lowercase();
        match name.as_str() {
            DENY_PUBLIC_NETWORK => "set spec.publicNetworkAccess to Disabled (the account is then reachable through private endpoints only)".to_owned(),
            DENY_LOCAL_AUTH => "set spec.disableLocalAuth to true (clients then authenticate with Microsoft Entra ID only)".to_owned(),
            REQUIRE_TAG => match &self.tag_name {
                Some(tag) => format!("add the tag '{tag}' to spec.tags"),
                None => "add the tag the assignment requires (its tagName parameter) to spec.tags".to_owned(),
            },
            REQUIRE_CMK => "the account must carry its customer-managed key in the write: this is the operator's own field; report it as a bug".to_owned(),
            _ => format!(
                "the operator knows no spec field for policy definition {}: read its rule (az policy definition show --name {}) and set the matching spec field, or ask the assignment's owner for an exemption",
                self.definition_id,
                self.definition_name()
            ),
        }
    }

    /// The policy and its assignment, named as a person finds them in the portal.
    pub fn describe(&self) -> String {
        let definition = match &self.definition_display_name {
            Some(d) => format!("policy '{d}' ({})", self.definition_id),
            None => format!("policy {}", self.definition_id),
        };
        let assignment = match &self.assignment_display_name {
            Some(d) => format!("assignment '{d}' ({})", self.assignment_id),
            None => format!("assignment {}", self.assignment_id),
        };
        format!("{definition}, {assignment}: {}", self.remedy())
    }
}

/// Every violation described, or Azure's own message when it named none.
pub fn describe(violations: &[PolicyViolation], azure_message: &str) -> String {
    if violations.is_empty() {
        return format!(
            "{azure_message} (Azure named no assignment: see the subscription's policy assignments)"
        );
    }
    violations
        .iter()
        .map(PolicyViolation::describe)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(definition: &str) -> PolicyViolation {
        PolicyViolation {
            definition_id: format!(
                "/providers/Microsoft.Authorization/policyDefinitions/{definition}"
            ),
            assignment_id:
                "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_built_in_names_the_field_that_satisfies_it() {
        assert!(
            v(DENY_PUBLIC_NETWORK)
                .remedy()
                .contains("spec.publicNetworkAccess to Disabled")
        );
        assert!(
            v(&DENY_LOCAL_AUTH.to_ascii_uppercase())
                .remedy()
                .contains("spec.disableLocalAuth to true")
        );
        let mut tag = v(REQUIRE_TAG);
        tag.tag_name = Some("costCenter".into());
        assert!(tag.remedy().contains("'costCenter' to spec.tags"));
        assert!(
            v("0000")
                .remedy()
                .contains("az policy definition show --name 0000")
        );
    }

    #[test]
    fn the_description_names_policy_and_assignment() {
        let mut x = v(DENY_PUBLIC_NETWORK);
        x.definition_display_name =
            Some("Azure Cosmos DB should disable public network access".into());
        x.assignment_display_name = Some("no public cosmos".into());
        let text = describe(&[x], "ignored");
        assert!(
            text.contains("policy 'Azure Cosmos DB should disable public network access'"),
            "{text}"
        );
        assert!(text.contains("assignment 'no public cosmos' (/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a1)"), "{text}");
        assert!(describe(&[], "Resource 'a' was disallowed by policy.").contains("was disallowed"));
    }
}
