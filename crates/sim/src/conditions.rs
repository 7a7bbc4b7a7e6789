//! Role assignment conditions (Azure ABAC, `conditionVersion` "2.0") on the
//! authorization actions `Microsoft.Authorization/roleAssignments/write` and
//! `/delete`: what lets a role hold `roleAssignments/write` without being
//! Owner-equivalent, by constraining which roles its holder may assign.
//!
//! The grammar carried over is the documented subset for these actions
//! (learn.microsoft.com, "Authorization actions and attributes",
//! conditions-authorization-actions-attributes; "Examples to delegate Azure
//! role assignment management with conditions",
//! delegate-role-assignments-examples, "Constrain roles"):
//!
//! ```text
//! ( ( !(ActionMatches{'Microsoft.Authorization/roleAssignments/write'}) )
//!   OR ( @Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId]
//!        ForAnyOfAnyValues:GuidEquals {g1, g2} ) )
//! AND
//! ( ( !(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'}) )
//!   OR ( @Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId]
//!        ForAnyOfAnyValues:GuidEquals {g1, g2} ) )
//! ```
//!
//! `@Request` attributes are the role assignment in the request body (a
//! write), `@Resource` ones the stored assignment (a delete); the attributes
//! are `RoleDefinitionId` (its GUID), `PrincipalId` and `PrincipalType`. An
//! attribute the request does not carry matches nothing (ABAC inspects the
//! request body only: a missing `principalType` fails a condition on it,
//! hashicorp/terraform-provider-azurerm#23364, langchain-ai/terraform#106).
//! A denial is ARM's ordinary 403 `AuthorizationFailed`, which says nothing
//! about the condition (quoted in
//! Azure/terraform-azurerm-avm-res-documentdb-databaseaccount#174).
//! A condition the simulator cannot parse grants nothing (fails closed).

/// The attributes of one authorization request.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    /// Attributes of the request body (`@Request[...]`).
    pub request: AssignmentAttributes,
    /// Attributes of the existing resource (`@Resource[...]`).
    pub resource: AssignmentAttributes,
}

/// A role assignment's attributes, as conditions name them.
#[derive(Clone, Debug, Default)]
pub struct AssignmentAttributes {
    /// `Microsoft.Authorization/roleAssignments:RoleDefinitionId` (the GUID).
    pub role_definition_id: Option<String>,
    /// `Microsoft.Authorization/roleAssignments:PrincipalId`.
    pub principal_id: Option<String>,
    /// `Microsoft.Authorization/roleAssignments:PrincipalType`.
    pub principal_type: Option<String>,
}

/// Whether `condition` holds for `action` with `attrs`; `None` when the
/// simulator cannot parse it.
pub fn holds(condition: &str, action: &str, attrs: &Attributes) -> Option<bool> {
    let tokens = tokenize(condition)?;
    let mut p = Parser {
        tokens: &tokens,
        at: 0,
        action,
        attrs,
    };
    let value = p.or()?;
    (p.at == tokens.len()).then_some(value)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Open,
    Close,
    Not,
    And,
    Or,
    /// `ActionMatches{'...'}`: the action named.
    ActionMatches(String),
    /// `@Source[attribute]`.
    Attribute(String, String),
    /// An operator word such as `ForAnyOfAnyValues:GuidEquals`.
    Word(String),
    /// `{a, 'b'}` or a single literal.
    Values(Vec<String>),
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let (tok, next) = if let Some(r) = rest.strip_prefix('(') {
            (Tok::Open, r)
        } else if let Some(r) = rest.strip_prefix(')') {
            (Tok::Close, r)
        } else if let Some(r) = rest.strip_prefix('!') {
            (Tok::Not, r)
        } else if let Some(r) = rest.strip_prefix("ActionMatches{") {
            let end = r.find('}')?;
            (
                Tok::ActionMatches(unquote(&r[..end])?.to_owned()),
                &r[end + 1..],
            )
        } else if let Some(r) = rest.strip_prefix('@') {
            let open = r.find('[')?;
            let close = r.find(']')?;
            (
                Tok::Attribute(r[..open].to_owned(), r[open + 1..close].to_owned()),
                &r[close + 1..],
            )
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}')?;
            let values = r[..end]
                .split(',')
                .map(|v| unquote(v.trim()).map(str::to_owned))
                .collect::<Option<Vec<_>>>()?;
            (Tok::Values(values), &r[end + 1..])
        } else if let Some(r) = rest.strip_prefix('\'') {
            let end = r.find('\'')?;
            (Tok::Values(vec![r[..end].to_owned()]), &r[end + 1..])
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || "(){}!".contains(c))
                .unwrap_or(rest.len());
            let word = &rest[..end];
            let tok = match word.to_ascii_uppercase().as_str() {
                "AND" | "&&" => Tok::And,
                "OR" | "||" => Tok::Or,
                "" => return None,
                _ => Tok::Word(word.to_owned()),
            };
            (tok, &rest[end..])
        };
        out.push(tok);
        rest = next.trim_start();
    }
    Some(out)
}

fn unquote(v: &str) -> Option<&str> {
    let v = v.trim();
    match v.strip_prefix('\'') {
        Some(inner) => inner.strip_suffix('\''),
        None => (!v.is_empty()).then_some(v),
    }
}

struct Parser<'a> {
    tokens: &'a [Tok],
    at: usize,
    action: &'a str,
    attrs: &'a Attributes,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }
    /// AND binds tighter than OR, as in the documented grammar.
    fn or(&mut self) -> Option<bool> {
        let mut value = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            let rhs = self.and()?;
            value = value || rhs;
        }
        Some(value)
    }
    fn and(&mut self) -> Option<bool> {
        let mut value = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            let rhs = self.unary()?;
            value = value && rhs;
        }
        Some(value)
    }
    fn unary(&mut self) -> Option<bool> {
        match self.next()? {
            Tok::Not => Some(!self.unary()?),
            Tok::Open => {
                let value = self.or()?;
                (self.next()? == Tok::Close).then_some(value)
            }
            Tok::ActionMatches(a) => Some(a.eq_ignore_ascii_case(self.action)),
            Tok::Attribute(source, name) => {
                let Tok::Word(op) = self.next()? else {
                    return None;
                };
                // `{a, b}`, 'a', or a bare GUID.
                let values = match self.next()? {
                    Tok::Values(values) => values,
                    Tok::Word(value) => vec![value],
                    _ => return None,
                };
                self.compare(&source, &name, &op, &values)
            }
            _ => None,
        }
    }
    fn compare(&self, source: &str, name: &str, op: &str, values: &[String]) -> Option<bool> {
        let attrs = match source {
            "Request" => &self.attrs.request,
            "Resource" => &self.attrs.resource,
            _ => return None,
        };
        let actual = match name.strip_prefix("Microsoft.Authorization/roleAssignments:")? {
            "RoleDefinitionId" => &attrs.role_definition_id,
            "PrincipalId" => &attrs.principal_id,
            "PrincipalType" => &attrs.principal_type,
            _ => return None,
        };
        // `ForAnyOfAnyValues:` holds when some listed value satisfies the
        // comparison, `ForAnyOfAllValues:` when every one does; a bare
        // operator takes one value.
        let (quantifier, base) = match op.split_once(':') {
            Some((q @ ("ForAnyOfAnyValues" | "ForAnyOfAllValues"), base)) => (Some(q), base),
            Some(_) => return None,
            None => (None, op),
        };
        let equal = match base {
            "GuidEquals" | "StringEqualsIgnoreCase" => true,
            "GuidNotEquals" | "StringNotEqualsIgnoreCase" => false,
            _ => return None,
        };
        let Some(actual) = actual else {
            return Some(false);
        };
        let test = |v: &String| v.eq_ignore_ascii_case(actual) == equal;
        match (quantifier, values) {
            (Some("ForAnyOfAnyValues"), _) => Some(values.iter().any(test)),
            (Some(_), _) => Some(values.iter().all(test)),
            (None, [one]) => Some(test(one)),
            (None, _) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
    const DELETE: &str = "Microsoft.Authorization/roleAssignments/delete";
    const CSEU: &str = "e147488a-f6f5-4113-8e2d-b22465e65bf6";
    const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

    fn cond() -> String {
        format!(
            "((!(ActionMatches{{'{WRITE}'}})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{CSEU}}})) AND ((!(ActionMatches{{'{DELETE}'}})) OR (@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{CSEU}}}))"
        )
    }

    fn with(request: Option<&str>, resource: Option<&str>) -> Attributes {
        Attributes {
            request: AssignmentAttributes {
                role_definition_id: request.map(str::to_owned),
                ..Default::default()
            },
            resource: AssignmentAttributes {
                role_definition_id: resource.map(str::to_owned),
                ..Default::default()
            },
        }
    }

    #[test]
    fn only_the_named_role_may_be_assigned_or_removed() {
        let c = cond();
        assert_eq!(holds(&c, WRITE, &with(Some(CSEU), None)), Some(true));
        assert_eq!(
            holds(&c, WRITE, &with(Some(&CSEU.to_uppercase()), None)),
            Some(true)
        );
        assert_eq!(holds(&c, WRITE, &with(Some(OWNER), None)), Some(false));
        assert_eq!(holds(&c, DELETE, &with(None, Some(CSEU))), Some(true));
        assert_eq!(holds(&c, DELETE, &with(None, Some(OWNER))), Some(false));
        // Other actions of the same assignment are not constrained.
        assert_eq!(
            holds(&c, "Microsoft.KeyVault/vaults/read", &Attributes::default()),
            Some(true)
        );
        // An attribute the request lacks matches nothing.
        assert_eq!(holds(&c, WRITE, &Attributes::default()), Some(false));
    }

    #[test]
    fn principal_type_and_several_values_are_understood() {
        let c = format!(
            "(!(ActionMatches{{'{WRITE}'}})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{OWNER}, {CSEU}}} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {{'User', 'Group'}})"
        );
        let mut attrs = with(Some(CSEU), None);
        assert_eq!(holds(&c, WRITE, &attrs), Some(false));
        attrs.request.principal_type = Some("group".into());
        assert_eq!(holds(&c, WRITE, &attrs), Some(true));
    }

    #[test]
    fn not_equals_forms_exclude_the_listed_roles() {
        let c = format!(
            "(!(ActionMatches{{'{WRITE}'}})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAllValues:GuidNotEquals {{{OWNER}, {CSEU}}})"
        );
        assert_eq!(holds(&c, WRITE, &with(Some(OWNER), None)), Some(false));
        let reader = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
        assert_eq!(holds(&c, WRITE, &with(Some(reader), None)), Some(true));
        let single = format!(
            "@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] GuidNotEquals {OWNER}"
        );
        assert_eq!(holds(&single, WRITE, &with(Some(OWNER), None)), Some(false));
        assert_eq!(holds(&single, WRITE, &with(Some(CSEU), None)), Some(true));
    }

    #[test]
    fn what_cannot_be_parsed_is_reported() {
        for bad in [
            "",
            "(",
            "@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] Bogus {x}",
            "@Request[Other:Attr] GuidEquals {x}",
            "ActionMatches{'a'} AND",
        ] {
            assert_eq!(holds(bad, WRITE, &Attributes::default()), None, "{bad}");
        }
    }
}
