//! The runbook's names: the default of every flag and answer that names an
//! object or a namespace, in one place, so that the subcommands, the wizard,
//! the answers file and the hints `status` prints agree on what "not given"
//! means.

/// How long one API request may take, as `--request-timeout` is written.
pub const REQUEST_TIMEOUT: &str = "30s";
pub const KMS_NAMESPACE: &str = "kube-system";
pub const ISTIO_NAMESPACE: &str = "istio-system";
/// The KMS API Deployment.
pub const DEPLOYMENT: &str = "key-management-api";
/// The STS token adapter Deployment.
pub const TOKEN_ADAPTER: &str = "tokenadapter";
/// The Secret holding the API key, and its data key.
pub const SECRET: &str = "sts-apikey";
pub const SECRET_KEY: &str = "apikey";
/// The IdentityMappingPolicy.
pub const POLICY: &str = "stspolicy";
/// The ClusterIssuer that signs the gateway's certificate.
pub const ISSUER: &str = "icp-ca-issuer";
pub const ISSUER_KIND: &str = "ClusterIssuer";
/// The gateway certificate's common name.
pub const COMMON_NAME: &str = "istio-service";
/// The path prefix the VirtualService routes to KMS, and what it becomes.
pub const PATH_PREFIX: &str = "/kms/api";
pub const REWRITE: &str = "/api";
/// How long a rollout may take, as `--timeout` is written.
pub const ROLLOUT_TIMEOUT: &str = "5m";
/// How long a move to the Gateway API waits for its route to serve.
pub const SERVE_TIMEOUT: &str = "2m";
/// The label of the ingress gateway pods the runbook's Gateway selects.
pub const GATEWAY_SELECTOR: &str = "istio=ingressgateway";
