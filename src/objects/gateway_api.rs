//! Typed, partial schemas of the Kubernetes Gateway API kinds `expose --api
//! gateway-api` writes and `status` reads: the Gateway, the HTTPRoute and
//! the BackendTLSPolicy (all `gateway.networking.k8s.io/v1`), with the
//! status conditions istiod writes on them. As in `schemas`, each struct
//! names the fields the plugin sets or checks and keeps the others in
//! `rest`. Also the one reading of istiod's conditions (`first_unmet`,
//! `attachments_met`) that `status` judges and a move between APIs waits on.

use std::collections::BTreeMap;

use kube::core::Object;
use serde::{Deserialize, Serialize};

use crate::objects::schemas::Rest;

pub type ApiGateway = Object<ApiGatewaySpec, ApiGatewayStatus>;
pub type HttpRoute = Object<HttpRouteSpec, PolicyStatus>;
pub type BackendTlsPolicy = Object<BackendTlsPolicySpec, PolicyStatus>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGatewaySpec {
    #[serde(default)]
    pub gateway_class_name: String,
    /// An existing gateway Service the Gateway attaches to, by hostname;
    /// empty when istiod deploys a gateway for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewayAddress>,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// The label istiod puts on the pods of the gateway it deploys for a
/// Gateway, with the Gateway's name.
pub const DEPLOYED_GATEWAY_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

impl ApiGatewaySpec {
    /// The Service in `namespace` the Gateway is attached to by its
    /// address; `None` for a gateway istiod deploys.
    pub fn attached_service(&self, namespace: &str) -> Option<&str> {
        let suffix = format!(".{namespace}.svc.cluster.local");
        self.addresses
            .iter()
            .filter(|address| address.type_.as_deref() == Some("Hostname"))
            .find_map(|address| address.value.strip_suffix(&suffix))
    }
}

impl GatewayAddress {
    /// The address that attaches a Gateway to Service `namespace/service`.
    pub fn of_service(service: &str, namespace: &str) -> GatewayAddress {
        GatewayAddress {
            type_: Some("Hostname".into()),
            value: format!("{service}.{namespace}.svc.cluster.local"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayAddress {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub port: i32,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<AllowedRoutes>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_refs: Vec<ObjectReference>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AllowedRoutes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<RouteNamespaces>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteNamespaces {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// A reference to another object by group, kind, name (and, where the
/// kind allows it, namespace, port or section).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    #[serde(default)]
    pub parent_refs: Vec<ObjectReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<RouteRule>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl HttpRouteSpec {
    /// The path prefix of the first rule's first match.
    pub fn first_prefix(&self) -> Option<&str> {
        let path = self.rules.first()?.matches.first()?.path.as_ref()?;
        (path.type_ == "PathPrefix").then_some(path.value.as_str())
    }

    /// What the first rule replaces the matched prefix with.
    pub fn first_prefix_rewrite(&self) -> Option<&str> {
        self.rules
            .first()?
            .filters
            .iter()
            .find_map(|filter| filter.url_rewrite.as_ref()?.path.as_ref())
            .filter(|path| path.type_ == "ReplacePrefixMatch")?
            .replace_prefix_match
            .as_deref()
    }

    /// The Service and port the first rule sends requests to.
    pub fn first_backend(&self) -> Option<(&str, i32)> {
        let backend = self.rules.first()?.backend_refs.first()?;
        Some((backend.name.as_str(), backend.port?))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRule {
    #[serde(default)]
    pub matches: Vec<RouteMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<RouteFilter>,
    #[serde(default)]
    pub backend_refs: Vec<ObjectReference>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PathMatch {
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteFilter {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewrite>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UrlRewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathModifier {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsPolicySpec {
    #[serde(default)]
    pub target_refs: Vec<ObjectReference>,
    #[serde(default)]
    pub validation: BackendTlsValidation,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsValidation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificate_refs: Vec<ObjectReference>,
    #[serde(default)]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<SubjectAltName>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubjectAltName {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// A condition as the Gateway API writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiCondition {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// The object's generation the condition was written for.
    #[serde(
        rename = "observedGeneration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub observed_generation: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiGatewayStatus {
    #[serde(default)]
    pub addresses: Vec<GatewayAddress>,
    #[serde(default)]
    pub conditions: Vec<ApiCondition>,
    #[serde(default)]
    pub listeners: Vec<ListenerStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListenerStatus {
    pub name: String,
    #[serde(default)]
    pub conditions: Vec<ApiCondition>,
}

/// The status of a route (`parents`) or a policy (`ancestors`): the
/// conditions each controller wrote for each place it is attached to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyStatus {
    #[serde(default, alias = "ancestors")]
    pub parents: Vec<AttachmentStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentStatus {
    #[serde(default, alias = "ancestorRef")]
    pub parent_ref: ObjectReference,
    #[serde(default)]
    pub controller_name: String,
    #[serde(default)]
    pub conditions: Vec<ApiCondition>,
}

/// The controller whose conditions count: istiod's.
pub const ISTIO_GATEWAY_CONTROLLER: &str = "istio.io/gateway-controller";

/// The first of `wanted` whose condition is not True for the object's
/// `generation`, in words; `None` when all are. A condition istiod has not
/// written yet, or wrote for an older generation, is not met.
pub fn first_unmet(
    conditions: &[ApiCondition],
    generation: Option<i64>,
    wanted: &[&str],
) -> Option<String> {
    wanted
        .iter()
        .find_map(|kind| match conditions.iter().find(|c| c.type_ == *kind) {
            Some(c) if c.status != "True" => Some(format!(
                "{kind} is {} ({}: {})",
                c.status, c.reason, c.message
            )),
            Some(c)
                if generation.is_some()
                    && c.observed_generation
                        .is_some_and(|seen| Some(seen) != generation) =>
            {
                Some(format!(
                    "istiod has not reported {kind} for the latest change yet"
                ))
            }
            Some(_) => None,
            None => Some(format!("istiod has not reported {kind} yet")),
        })
}

/// istiod's `Accepted` and `ResolvedRefs` for each place a route or a
/// policy is attached to (its parents, its ancestors): how many are met,
/// or the first that is not (`None`: istiod attached it nowhere yet).
pub fn attachments_met(
    status: Option<&PolicyStatus>,
    generation: Option<i64>,
) -> Result<usize, Option<String>> {
    let mut met = 0;
    let ours = status
        .into_iter()
        .flat_map(|status| &status.parents)
        .filter(|attachment| attachment.controller_name == ISTIO_GATEWAY_CONTROLLER);
    for attachment in ours {
        if let Some(problem) = first_unmet(
            &attachment.conditions,
            generation,
            &["Accepted", "ResolvedRefs"],
        ) {
            let to = &attachment.parent_ref;
            let kind = to.kind.as_deref().unwrap_or("Gateway");
            return Err(Some(format!("for {kind} {}: {problem}", to.name)));
        }
        met += 1;
    }
    if met == 0 {
        return Err(None);
    }
    Ok(met)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conditions(value: serde_json::Value) -> Vec<ApiCondition> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_condition_counts_for_the_generation_it_was_written_for() {
        let written = conditions(json!([
            {"type": "Accepted", "status": "True", "observedGeneration": 1},
            {"type": "Programmed", "status": "False", "reason": "AddressNotAssigned",
             "message": "pending", "observedGeneration": 1},
        ]));
        assert_eq!(first_unmet(&written, Some(1), &["Accepted"]), None);
        assert_eq!(
            first_unmet(&written, Some(2), &["Accepted"]).as_deref(),
            Some("istiod has not reported Accepted for the latest change yet")
        );
        assert_eq!(
            first_unmet(&written, Some(1), &["Accepted", "Programmed"]).as_deref(),
            Some("Programmed is False (AddressNotAssigned: pending)")
        );
        assert_eq!(
            first_unmet(&written, None, &["ResolvedRefs"]).as_deref(),
            Some("istiod has not reported ResolvedRefs yet")
        );
    }

    #[test]
    fn only_istiods_attachments_count() {
        let status: PolicyStatus = serde_json::from_value(json!({"ancestors": [
            {"ancestorRef": {"name": "kms-gateway"}, "controllerName": "someone.else/controller",
             "conditions": [{"type": "Accepted", "status": "False"}]},
            {"ancestorRef": {"name": "kms-gateway"}, "controllerName": ISTIO_GATEWAY_CONTROLLER,
             "conditions": [{"type": "Accepted", "status": "True"},
                            {"type": "ResolvedRefs", "status": "True"}]},
        ]}))
        .unwrap();
        assert_eq!(attachments_met(Some(&status), None), Ok(1));
        assert_eq!(attachments_met(None, None), Err(None));
        let refused: PolicyStatus = serde_json::from_value(json!({"parents": [
            {"parentRef": {"kind": "Gateway", "name": "kms-gateway"},
             "controllerName": ISTIO_GATEWAY_CONTROLLER,
             "conditions": [{"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners",
                             "message": "no"}]},
        ]}))
        .unwrap();
        assert_eq!(
            attachments_met(Some(&refused), None),
            Err(Some(
                "for Gateway kms-gateway: Accepted is False (NotAllowedByListeners: no)".into()
            ))
        );
    }
}
