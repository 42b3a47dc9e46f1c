//! The RBAC permissions each part of the runbook needs, and which of them the
//! current user lacks. One SelfSubjectRulesReview per namespace lists what the
//! user may do there (cluster-wide grants included), and the needs are matched
//! against it locally; only where the server says its list is incomplete (a
//! webhook authorizer) is each need asked with a SelfSubjectAccessReview.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, ResourceRule, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::cluster::apply::{Strategy, WriteOptions};
use crate::cluster::injector::DEFAULT_TAG_WEBHOOK;
use crate::cluster::{Cluster, Target};
use crate::error::Result;
use crate::objects::apis::{
    CertManagerApi, GATEWAY_API, IDENTITY_POLICY_GROUP, ISTIO_NETWORKING, ServedApis,
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    pub verb: &'static str,
    pub group: String,
    pub resource: &'static str,
    /// `None` for cluster-scoped resources.
    pub namespace: Option<String>,
    /// The one object meant (a rule's `resourceNames`); `None` for any.
    pub name: Option<&'static str>,
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource = if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        let resource = match self.name {
            Some(name) => format!("{resource} {name}"),
            None => resource,
        };
        match &self.namespace {
            Some(ns) => write!(f, "{} {resource} in {ns}", self.verb),
            None => write!(f, "{} {resource} (cluster-wide)", self.verb),
        }
    }
}

fn need(
    verbs: &[&'static str],
    group: &str,
    resource: &'static str,
    ns: Option<&str>,
) -> Vec<Permission> {
    verbs
        .iter()
        .map(|verb| Permission {
            verb,
            group: group.to_owned(),
            resource,
            namespace: ns.map(str::to_owned),
            name: None,
        })
        .collect()
}

const READ_VERBS: [&str; 2] = ["get", "list"];

/// The namespaces the runbook spans, and the APIs served that change what
/// the commands read and write.
pub struct Scope<'a> {
    pub kms: &'a str,
    pub istio: &'a str,
    pub cert_manager: Option<CertManagerApi>,
    /// Whether the cluster serves the Gateway API: `expose` then reads (and
    /// may write) its objects too, and `uninstall` takes them out.
    pub gateway_api: bool,
}

impl Scope<'_> {
    /// The namespaces `target` names, with the APIs `served`.
    pub fn of<'a>(target: &'a Target, served: &ServedApis) -> Scope<'a> {
        Scope {
            kms: &target.kms_namespace,
            istio: &target.istio_namespace,
            cert_manager: served.cert_manager(),
            gateway_api: served.gateway_api(),
        }
    }

    /// The namespaces `target` names, for commands no served API changes.
    pub fn namespaces(target: &Target) -> Scope<'_> {
        Scope::of(target, &ServedApis::NONE)
    }
}

/// What `set-apikey` needs: creating the Secret only with `--create`, and
/// the token adapter's Deployment only when it may be restarted.
pub fn for_set_apikey(scope: &Scope, create_secret: bool, restart: bool) -> Vec<Permission> {
    let secret_verbs: &[&'static str] = if create_secret {
        &["get", "patch", "create"]
    } else {
        &["get", "patch"]
    };
    let mut needs = need(secret_verbs, "", "secrets", Some(scope.istio));
    // The restart's rollout is awaited by watching the Deployment.
    if restart {
        needs.extend(need(
            &["get", "patch", "watch"],
            "apps",
            "deployments",
            Some(scope.istio),
        ));
    }
    needs
}

/// The verbs that apply custom objects under a strategy: server-side apply
/// sends patches, which create objects that do not exist yet; the update
/// strategy creates or replaces.
fn apply_verbs(strategy: Strategy) -> &'static [&'static str] {
    match strategy {
        Strategy::ServerSide => &["get", "create", "patch"],
        Strategy::Update => &["get", "create", "update"],
    }
}

pub fn for_inject(scope: &Scope) -> Vec<Permission> {
    let mut needs = need(
        &["get", "update", "watch"],
        "apps",
        "deployments",
        Some(scope.kms),
    );
    needs.extend(need(&["list"], "", "pods", Some(scope.kms)));
    // The injector configurations of every revision, in one list.
    needs.extend(need(&["list"], "", "configmaps", Some(scope.istio)));
    needs
}

/// Reading the webhook configuration of Istio's `default` tag: one
/// cluster-wide object, by name. Optional: without it the revision is
/// chosen by the fallbacks of `injector::ControlPlanes::choose`, so no
/// preflight asks for it; `rbac --read-default-tag` grants it.
pub fn for_default_tag() -> Vec<Permission> {
    vec![Permission {
        verb: "get",
        group: "admissionregistration.k8s.io".into(),
        resource: "mutatingwebhookconfigurations",
        namespace: None,
        name: Some(DEFAULT_TAG_WEBHOOK),
    }]
}

/// Reading what istiod sent the gateway proxies, from their own admin
/// interface through a port-forward (the WebSocket upgrade is a `get`, and
/// the API server also asks for `create`), and the gateway Services (a
/// Gateway API Gateway attached to one is served by the pods its selector
/// names). Optional, like the default tag: without it `status` names the
/// check it skipped; `rbac --read-gateway-config` grants it.
pub fn for_gateway_config(istio_namespace: &str) -> Vec<Permission> {
    let mut needs = need(
        &["get", "create"],
        "",
        "pods/portforward",
        Some(istio_namespace),
    );
    needs.extend(need(&["get"], "", "services", Some(istio_namespace)));
    needs
}

pub fn for_expose(scope: &Scope, strategy: Strategy) -> Vec<Permission> {
    let mut needs = need(&["get"], "", "services", Some(scope.kms));
    // The gateway pods and kms-api's pods, for what they mount (and the KMS
    // Deployment, whose template says it early); kms-api's TLS secret; the
    // CA Secret written beside the gateway.
    needs.extend(need(&["list"], "", "pods", Some(scope.kms)));
    needs.extend(need(&["get"], "apps", "deployments", Some(scope.kms)));
    needs.extend(need(&["get"], "", "secrets", Some(scope.kms)));
    needs.extend(need(&["list"], "", "pods", Some(scope.istio)));
    needs.extend(need(
        apply_verbs(strategy),
        "",
        "secrets",
        Some(scope.istio),
    ));
    if let Some(api) = scope.cert_manager {
        needs.extend(need(
            apply_verbs(strategy),
            api.group(),
            "certificates",
            Some(scope.istio),
        ));
        needs.extend(need(&["get"], api.group(), "clusterissuers", None));
    }
    for resource in ["gateways", "virtualservices", "destinationrules"] {
        needs.extend(need(
            apply_verbs(strategy),
            ISTIO_NETWORKING,
            resource,
            Some(scope.kms),
        ));
    }
    // Every application's Gateways: istiod merges those of every namespace
    // onto the gateway pods they select.
    needs.extend(need(&["list"], ISTIO_NETWORKING, "gateways", None));
    if scope.gateway_api {
        // The Gateway API's objects, read to tell which API exposes KMS
        // already (a run never switches silently) and written with
        // `--api gateway-api`: the Gateway beside the certificate's Secret,
        // the route, the CA and the policy beside kms-api.
        needs.extend(need(
            apply_verbs(strategy),
            GATEWAY_API,
            "gateways",
            Some(scope.istio),
        ));
        for resource in ["httproutes", "backendtlspolicies"] {
            needs.extend(need(
                apply_verbs(strategy),
                GATEWAY_API,
                resource,
                Some(scope.kms),
            ));
        }
        needs.extend(need(
            apply_verbs(strategy),
            "",
            "configmaps",
            Some(scope.kms),
        ));
        // The gateway Service `--gateway-service` names, checked before
        // a Gateway is attached to it.
        needs.extend(need(&["get"], "", "services", Some(scope.istio)));
    }
    needs
}

pub fn for_map_identity(scope: &Scope, strategy: Strategy) -> Vec<Permission> {
    let mut needs = need(
        apply_verbs(strategy),
        IDENTITY_POLICY_GROUP,
        "identitymappingpolicies",
        Some(scope.istio),
    );
    needs.extend(need(&["get"], "", "secrets", Some(scope.istio)));
    needs
}

/// What `uninstall` may need: reading and deleting every object the setup
/// made (the two secrets only on request), restoring the Deployment's pod
/// template and watching its rollout. Its preflight checks the part its
/// plan uses.
pub fn for_uninstall(scope: &Scope) -> Vec<Permission> {
    let mut needs = need(
        &["get", "delete"],
        IDENTITY_POLICY_GROUP,
        "identitymappingpolicies",
        Some(scope.istio),
    );
    for resource in ["gateways", "virtualservices", "destinationrules"] {
        needs.extend(need(
            &["get", "delete"],
            ISTIO_NETWORKING,
            resource,
            Some(scope.kms),
        ));
    }
    if let Some(api) = scope.cert_manager {
        needs.extend(need(
            &["get", "delete"],
            api.group(),
            "certificates",
            Some(scope.istio),
        ));
    }
    needs.extend(need(&["get", "delete"], "", "secrets", Some(scope.istio)));
    if scope.gateway_api {
        needs.extend(need(
            &["get", "delete"],
            GATEWAY_API,
            "gateways",
            Some(scope.istio),
        ));
        for resource in ["httproutes", "backendtlspolicies"] {
            needs.extend(need(
                &["get", "delete"],
                GATEWAY_API,
                resource,
                Some(scope.kms),
            ));
        }
        needs.extend(need(&["get", "delete"], "", "configmaps", Some(scope.kms)));
    }
    needs.extend(need(
        &["get", "update", "watch"],
        "apps",
        "deployments",
        Some(scope.kms),
    ));
    needs.extend(need(&["list"], "apps", "replicasets", Some(scope.kms)));
    needs.extend(need(&["list"], "", "pods", Some(scope.kms)));
    needs
}

/// Everything the four writing subcommands need as the runbook runs them
/// (the Secret exists, the token adapter is restarted, objects are applied
/// server-side), without repeats.
pub fn for_everything(scope: &Scope) -> Vec<Permission> {
    let mut needs = for_set_apikey(scope, false, true);
    needs.extend(for_inject(scope));
    needs.extend(for_expose(scope, Strategy::ServerSide));
    needs.extend(for_map_identity(scope, Strategy::ServerSide));
    needs.sort();
    needs.dedup();
    needs
}

/// The commands whose permissions an administrator can grant as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    SetApikey,
    Inject,
    Expose,
    MapIdentity,
    /// Every read the checks make; `status` names what else is missing.
    Status,
    /// Everything the whole chain needs, as the runbook runs it.
    All,
    /// Taking the setup back out.
    Uninstall,
}

impl Command {
    /// As typed after `--for`.
    pub fn name(self) -> &'static str {
        match self {
            Command::SetApikey => "set-apikey",
            Command::Inject => "inject",
            Command::Expose => "expose",
            Command::MapIdentity => "map-identity",
            Command::Status => "status",
            Command::All => "all",
            Command::Uninstall => "uninstall",
        }
    }

    /// Whether the command reads what istiod sent the gateway proxies,
    /// where it may.
    pub fn checks_gateway_config(self) -> bool {
        matches!(self, Command::Status | Command::All)
    }

    /// Whether the command chooses an Istio revision, and so reads the
    /// `default` tag where it may.
    pub fn chooses_a_revision(self) -> bool {
        matches!(self, Command::Inject | Command::Status | Command::All)
    }

    /// What the command needs with its default options: the same lists its
    /// own preflight checks.
    pub fn needs(self, scope: &Scope) -> Vec<Permission> {
        match self {
            Command::SetApikey => for_set_apikey(scope, false, true),
            Command::Inject => for_inject(scope),
            Command::Expose => for_expose(scope, Strategy::ServerSide),
            Command::MapIdentity => for_map_identity(scope, Strategy::ServerSide),
            Command::Status => for_everything(scope)
                .into_iter()
                .filter(|p| READ_VERBS.contains(&p.verb))
                .collect(),
            Command::All => for_everything(scope),
            Command::Uninstall => for_uninstall(scope),
        }
    }
}

/// Who a binding grants to, as in an RBAC subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
    ServiceAccount { namespace: String, name: String },
}

impl Subject {
    fn rbac(&self) -> serde_json::Value {
        let api_group = "rbac.authorization.k8s.io";
        match self {
            Subject::User(name) => json!({"kind": "User", "apiGroup": api_group, "name": name}),
            Subject::Group(name) => json!({"kind": "Group", "apiGroup": api_group, "name": name}),
            Subject::ServiceAccount { namespace, name } => {
                json!({"kind": "ServiceAccount", "namespace": namespace, "name": name})
            }
        }
    }
}

/// Verbs by (API group, resource, object name): the rules of one Role.
type Rules<'a> = BTreeMap<(&'a str, &'a str, Option<&'a str>), Vec<&'static str>>;

/// The Roles, ClusterRole and bindings that grant exactly `needs` to
/// `subject`, named `name`: one Role and RoleBinding per namespace, a
/// ClusterRole and ClusterRoleBinding for cluster-wide needs. Each rule is
/// one resource (one object of it, where a need names one) with its verbs,
/// so nothing more than `needs` is granted.
pub fn rbac_objects(needs: &[Permission], name: &str, subject: &Subject) -> Vec<serde_json::Value> {
    let mut by_place: BTreeMap<Option<&str>, Rules> = BTreeMap::new();
    for need in needs {
        let verbs = by_place
            .entry(need.namespace.as_deref())
            .or_default()
            .entry((need.group.as_str(), need.resource, need.name))
            .or_default();
        if !verbs.contains(&need.verb) {
            verbs.push(need.verb);
        }
    }
    let mut objects = Vec::new();
    for (namespace, rules) in by_place {
        let rules: Vec<serde_json::Value> = rules
            .into_iter()
            .map(|((group, resource, name), mut verbs)| {
                verbs.sort_unstable();
                let mut rule =
                    json!({"apiGroups": [group], "resources": [resource], "verbs": verbs});
                if let Some(name) = name {
                    rule["resourceNames"] = json!([name]);
                }
                rule
            })
            .collect();
        let (role, binding) = match namespace {
            Some(_) => ("Role", "RoleBinding"),
            None => ("ClusterRole", "ClusterRoleBinding"),
        };
        let mut metadata = json!({"name": name});
        if let Some(namespace) = namespace {
            metadata["namespace"] = json!(namespace);
        }
        objects.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": role,
            "metadata": metadata, "rules": rules,
        }));
        objects.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": binding,
            "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role, "name": name},
            "subjects": [subject.rbac()],
        }));
    }
    objects
}

/// Whether a rule grants a permission: a rule limited to named objects
/// grants only a permission for one of them.
pub fn rule_allows(rule: &ResourceRule, permission: &Permission) -> bool {
    let has = |list: &Option<Vec<String>>, wanted: &str| {
        list.iter()
            .flatten()
            .any(|item| item == "*" || item == wanted)
    };
    (rule.verbs.iter().any(|v| v == "*" || v == permission.verb))
        && has(&rule.api_groups, &permission.group)
        && has(&rule.resources, permission.resource)
        && match rule.resource_names.as_deref() {
            None | Some([]) => true,
            Some(names) => permission
                .name
                .is_some_and(|wanted| names.iter().any(|name| name == wanted)),
        }
}

/// The permissions in `needs` the current user does not have.
pub async fn missing(cluster: &Cluster, needs: &[Permission]) -> Result<Vec<Permission>> {
    let mut namespaces: Vec<Option<String>> = needs.iter().map(|p| p.namespace.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    let reviews: Api<SelfSubjectRulesReview> = Api::all(cluster.client());
    let mut lacking = Vec::new();
    // Cluster-scoped needs are checked against the rules of any namespace:
    // cluster-wide grants appear in every namespace's review.
    let review_namespace = |ns: &Option<String>| {
        ns.clone()
            .or_else(|| needs.iter().find_map(|p| p.namespace.clone()))
            .unwrap_or_else(|| "default".into())
    };
    let mut review_namespaces: Vec<String> = namespaces.iter().map(review_namespace).collect();
    review_namespaces.sort();
    review_namespaces.dedup();
    // One review per namespace, all sent at once.
    let reviewed = futures::future::try_join_all(review_namespaces.into_iter().map(|name| {
        let reviews = reviews.clone();
        async move {
            let review = SelfSubjectRulesReview {
                spec: SelfSubjectRulesReviewSpec {
                    namespace: Some(name.clone()),
                },
                ..Default::default()
            };
            let answer = cluster
                .call(
                    &format!("review the current user's permissions in {name}"),
                    reviews.create(&PostParams::default(), &review),
                )
                .await?;
            let status = answer.status.unwrap_or_default();
            Ok::<_, crate::error::Error>((name, status.resource_rules, status.incomplete))
        }
    }))
    .await?;
    for permission in needs {
        let name = review_namespace(&permission.namespace);
        let (_, rules, incomplete) = reviewed
            .iter()
            .find(|(n, _, _)| *n == name)
            .expect("every namespace was reviewed");
        if rules.iter().any(|rule| rule_allows(rule, permission)) {
            continue;
        }
        if *incomplete && access_review(cluster, permission).await? {
            continue;
        }
        lacking.push(permission.clone());
    }
    Ok(lacking)
}

/// Fails, naming each missing permission, unless the user has all of `needs`.
/// Commands call this before their first write, so a user who lacks one
/// permission changes nothing.
pub async fn require(
    cluster: &Cluster,
    command: Command,
    needs: &[Permission],
    write: WriteOptions,
) -> Result<()> {
    let lacking = missing(cluster, &for_writes(needs, write)).await?;
    if lacking.is_empty() {
        return Ok(());
    }
    Err(refusal(cluster, command, &lacking).await)
}

/// Awaits `reads` while the current user's permissions are reviewed
/// against `needs`, in the same round trip: a user who lacks any is refused,
/// with every missing one named, whatever the reads met (a refused read
/// among them); otherwise the reads' outcome.
pub async fn reads_allowed<T>(
    cluster: &Cluster,
    command: Command,
    needs: &[Permission],
    reads: impl Future<Output = Result<T>>,
) -> Result<T> {
    let (lacking, read) = tokio::join!(missing(cluster, needs), reads);
    let lacking = lacking?;
    if !lacking.is_empty() {
        return Err(refusal(cluster, command, &lacking).await);
    }
    read
}

/// What a run with `write` needs of `needs`: a client dry run writes
/// nothing, so it needs only the reads.
pub fn for_writes(needs: &[Permission], write: WriteOptions) -> Vec<Permission> {
    needs
        .iter()
        .filter(|need| !write.client_dry_run() || READ_VERBS.contains(&need.verb))
        .cloned()
        .collect()
}

/// The error for a user who lacks `lacking`: each permission, and the
/// grant that gives `command` what it needs, for this user by name.
pub async fn refusal(
    cluster: &Cluster,
    command: Command,
    lacking: &[Permission],
) -> crate::error::Error {
    crate::error::Error::MissingPermissions {
        missing: lacking.iter().map(ToString::to_string).collect(),
        command: command.name(),
        user: current_user(cluster).await,
    }
}

/// The current user's name as the API server knows it, when it says.
async fn current_user(cluster: &Cluster) -> Option<String> {
    let reviews: Api<SelfSubjectReview> = Api::all(cluster.client());
    let answer = cluster
        .call(
            "ask the API server who the current user is",
            reviews.create(&PostParams::default(), &SelfSubjectReview::default()),
        )
        .await
        .ok()?;
    answer.status?.user_info?.username
}

async fn access_review(cluster: &Cluster, permission: &Permission) -> Result<bool> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(cluster.client());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(permission.verb.to_owned()),
                group: Some(permission.group.clone()),
                resource: Some(permission.resource.to_owned()),
                namespace: permission.namespace.clone(),
                name: permission.name.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = cluster
        .call(
            &format!("ask whether the current user may {permission}"),
            reviews.create(&PostParams::default(), &review),
        )
        .await?;
    Ok(answer.status.is_some_and(|status| status.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> ResourceRule {
        ResourceRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            resource_names: None,
        }
    }

    fn permission(verb: &'static str, group: &str, resource: &'static str) -> Permission {
        Permission {
            verb,
            group: group.into(),
            resource,
            namespace: Some("istio-system".into()),
            name: None,
        }
    }

    #[test]
    fn rules_match_by_verb_group_and_resource() {
        let p = permission("patch", "", "secrets");
        assert!(rule_allows(
            &rule(&["get", "patch"], &[""], &["secrets"]),
            &p
        ));
        assert!(rule_allows(&rule(&["*"], &["*"], &["*"]), &p));
        assert!(!rule_allows(&rule(&["get"], &[""], &["secrets"]), &p));
        assert!(!rule_allows(&rule(&["patch"], &["apps"], &["secrets"]), &p));
        assert!(!rule_allows(&rule(&["patch"], &[""], &["configmaps"]), &p));
    }

    #[test]
    fn rules_limited_to_names_count_only_for_those_objects() {
        let mut limited = rule(&["patch"], &[""], &["secrets"]);
        limited.resource_names = Some(vec!["other".into()]);
        assert!(!rule_allows(&limited, &permission("patch", "", "secrets")));
        let named = |name| Permission {
            name: Some(name),
            ..permission("patch", "", "secrets")
        };
        assert!(!rule_allows(&limited, &named("mine")));
        assert!(rule_allows(&limited, &named("other")));
        assert!(rule_allows(
            &rule(&["patch"], &[""], &["secrets"]),
            &named("mine")
        ));
    }

    #[test]
    fn a_named_need_is_granted_for_that_object_only() {
        let subject = Subject::User("alice".into());
        let objects = rbac_objects(&for_default_tag(), "tag", &subject);
        assert_eq!(objects[0]["kind"], "ClusterRole");
        assert_eq!(
            objects[0]["rules"],
            json!([{
                "apiGroups": ["admissionregistration.k8s.io"],
                "resources": ["mutatingwebhookconfigurations"],
                "resourceNames": ["istio-revision-tag-default"],
                "verbs": ["get"],
            }])
        );
        assert_eq!(
            for_default_tag()[0].to_string(),
            "get mutatingwebhookconfigurations.admissionregistration.k8s.io \
             istio-revision-tag-default (cluster-wide)"
        );
    }

    #[test]
    fn everything_covers_each_subcommand_once() {
        let scope = Scope {
            kms: "kube-system",
            istio: "istio-system",
            cert_manager: Some(CertManagerApi::Current),
            gateway_api: true,
        };
        let all = for_everything(&scope);
        for part in [
            for_set_apikey(&scope, false, true),
            for_inject(&scope),
            for_expose(&scope, Strategy::ServerSide),
            for_map_identity(&scope, Strategy::ServerSide),
        ] {
            assert!(part.iter().all(|p| all.contains(p)));
        }
        let mut deduped = all.clone();
        deduped.dedup();
        assert_eq!(all, deduped);
        assert!(
            all.iter()
                .any(|p| p.to_string() == "get clusterissuers.cert-manager.io (cluster-wide)")
        );
        assert!(
            all.iter()
                .any(|p| p.to_string() == "patch secrets in istio-system")
        );
        // Creating a secret is expose's (the gateway's CA Secret), never
        // set-apikey's unless asked with --create.
        let create_secret = |p: &Permission| p.to_string() == "create secrets in istio-system";
        assert!(
            !for_set_apikey(&scope, false, true)
                .iter()
                .any(create_secret)
        );
        assert!(
            for_expose(&scope, Strategy::ServerSide)
                .iter()
                .any(create_secret)
        );
    }

    #[test]
    fn rbac_grants_exactly_the_needs() {
        let scope = Scope {
            kms: "kms",
            istio: "istio",
            cert_manager: Some(CertManagerApi::Current),
            gateway_api: true,
        };
        for command in [
            Command::SetApikey,
            Command::Inject,
            Command::Expose,
            Command::MapIdentity,
            Command::Status,
            Command::All,
        ] {
            let needs = command.needs(&scope);
            let objects = rbac_objects(&needs, "grant", &Subject::User("u".into()));
            let mut granted: Vec<String> = Vec::new();
            for role in objects
                .iter()
                .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
            {
                let place = match role["metadata"]["namespace"].as_str() {
                    Some(namespace) => format!("in {namespace}"),
                    None => "(cluster-wide)".to_owned(),
                };
                for rule in role["rules"].as_array().unwrap() {
                    let group = rule["apiGroups"][0].as_str().unwrap();
                    let resource = rule["resources"][0].as_str().unwrap();
                    for verb in rule["verbs"].as_array().unwrap() {
                        let resource = if group.is_empty() {
                            resource.to_owned()
                        } else {
                            format!("{resource}.{group}")
                        };
                        granted.push(format!("{} {resource} {place}", verb.as_str().unwrap()));
                    }
                }
            }
            let mut wanted: Vec<String> = needs.iter().map(ToString::to_string).collect();
            wanted.sort();
            wanted.dedup();
            granted.sort();
            assert_eq!(granted, wanted, "{}", command.name());
            let bindings = objects
                .iter()
                .filter(|o| o["kind"].as_str().unwrap().ends_with("Binding"));
            assert!(bindings.clone().all(|b| b["subjects"][0]["name"] == "u"));
        }
        assert!(
            !Command::Status
                .needs(&scope)
                .iter()
                .any(|p| !READ_VERBS.contains(&p.verb))
        );
    }

    #[test]
    fn needs_follow_the_options() {
        let scope = Scope {
            kms: "kms",
            istio: "istio",
            cert_manager: None,
            gateway_api: false,
        };
        let shown = |needs: Vec<Permission>| -> Vec<String> {
            needs.iter().map(ToString::to_string).collect()
        };
        assert_eq!(
            shown(for_set_apikey(&scope, false, false)),
            ["get secrets in istio", "patch secrets in istio"]
        );
        assert_eq!(
            shown(for_set_apikey(&scope, true, true)),
            [
                "get secrets in istio",
                "patch secrets in istio",
                "create secrets in istio",
                "get deployments.apps in istio",
                "patch deployments.apps in istio",
                "watch deployments.apps in istio"
            ]
        );
        let policy = |strategy| shown(for_map_identity(&scope, strategy));
        assert!(
            policy(Strategy::ServerSide)
                .contains(&"patch identitymappingpolicies.policy.ibm.com in istio".to_owned())
        );
        assert!(
            policy(Strategy::Update)
                .contains(&"update identitymappingpolicies.policy.ibm.com in istio".to_owned())
        );
        assert!(
            !policy(Strategy::Update)
                .iter()
                .any(|p| p.starts_with("patch"))
        );
    }
}
