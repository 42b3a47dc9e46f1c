//! `expose`: the runbook's steps 5-12. Checks everything the objects depend
//! on first (the CRDs, at the versions served; the `kms-api` Service and its
//! port; the issuer; the gateway pods and what they mount; the certificate
//! kms-api serves and the CA that signed it), then applies the Certificate,
//! the CA Secret, Gateway, VirtualService and DestinationRule idempotently.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Secret, Service};
use kube::Api;
use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};

use crate::apply::{self, Desired};
use crate::cli::ExposeArgs;
use crate::cluster::{Cluster, Target};
use crate::datapath;
use crate::discovery::{self, CertManagerApi, ServedApis};
use crate::error::{Error, Result};
use crate::manifests::exposure::{self, Exposure, KMS_SERVICE};
use crate::permissions::{self, Scope};
use crate::rollout;

pub async fn run(target: &Target, args: &ExposeArgs) -> Result<()> {
    let cluster = Cluster::connect(target).await?;
    let served = discovery::discover(&cluster).await?;
    let objects = desired_objects(&cluster, &served, target, args).await?;
    apply::write_all(
        &cluster,
        &objects,
        args.apply.options(),
        args.write.options(),
    )
    .await
}

/// The four objects as they should be, in the API versions `served` lists.
/// Reads what they depend on first and fails, before any write, if
/// something is missing.
pub async fn desired_objects(
    cluster: &Cluster,
    served: &ServedApis,
    target: &Target,
    args: &ExposeArgs,
) -> Result<Vec<Desired>> {
    let cert_manager = served.cert_manager().ok_or_else(|| Error::Missing {
        kind: "API",
        namespace: "cluster".into(),
        name: "cert-manager.io/v1 or certmanager.k8s.io/v1alpha1".into(),
        hint: "install cert-manager: the cluster serves neither of its Certificate APIs".into(),
    })?;
    let istio_version = served.istio_networking().ok_or_else(|| Error::Missing {
        kind: "API",
        namespace: "cluster".into(),
        name: "networking.istio.io (v1, v1beta1 or v1alpha3)".into(),
        hint: "install Istio: the cluster does not serve its networking API".into(),
    })?;

    let kms_namespace = &target.kms_namespace;
    let scope = Scope {
        kms: kms_namespace,
        istio: &target.istio_namespace,
        cert_manager: Some(cert_manager),
    };
    let needs = permissions::for_expose(&scope, args.apply.apply_strategy);
    permissions::require(
        cluster,
        permissions::Command::Expose,
        &needs,
        args.write.options(),
    )
    .await?;
    let services: Api<Service> = Api::namespaced(cluster.client(), kms_namespace);
    let service = cluster
        .call(
            &format!("read service {kms_namespace}/{KMS_SERVICE}"),
            services.get_opt(KMS_SERVICE),
        )
        .await?
        .ok_or_else(|| Error::Missing {
            kind: "Service",
            namespace: kms_namespace.clone(),
            name: KMS_SERVICE.into(),
            hint: "KMS must be installed first; check --kms-namespace".into(),
        })?;
    let port =
        exposure::service_port(&service, args.port).map_err(|reason| Error::InvalidFlag {
            flag: "--port",
            reason,
        })?;

    let istio_namespace = &target.istio_namespace;
    let (gateway_pods, (served, ca_secret), ()) = tokio::try_join!(
        gateway_pods(cluster, istio_namespace, &args.gateway_selector),
        kms_certificates(
            cluster,
            kms_namespace,
            &service,
            args.upstream_ca_secret.as_deref()
        ),
        check_issuer(cluster, cert_manager, istio_namespace, args),
    )?;
    let upstream = exposure::upstream_trust(
        kms_namespace,
        served
            .as_ref()
            .map(|(name, secret)| (name.as_str(), secret)),
        ca_secret
            .as_ref()
            .map(|(name, secret)| (name.as_str(), secret)),
        exposure::ca_delivery(&gateway_pods),
    )
    .map_err(|unverifiable| Error::DataPath {
        problem: unverifiable.problem,
        hint: unverifiable.hint,
    })?;
    Ok(Exposure {
        kms_namespace: kms_namespace.clone(),
        istio_namespace: istio_namespace.clone(),
        cert_manager,
        istio_version,
        issuer: args.issuer.clone(),
        issuer_kind: args.issuer_kind.clone(),
        common_name: args.common_name.clone(),
        hosts: args.hosts.clone(),
        gateway_selector: args.gateway_selector.clone(),
        server_delivery: exposure::server_delivery(
            args.tls_credential_name.as_deref(),
            &gateway_pods,
        ),
        upstream,
        path_prefix: args.path_prefix.clone(),
        rewrite: args.rewrite.clone(),
        port,
    }
    .objects())
}

/// The pods the Gateway will select; refuses a selector that matches none.
async fn gateway_pods(
    cluster: &Cluster,
    namespace: &str,
    (label, value): &(String, String),
) -> Result<Vec<k8s_openapi::api::core::v1::Pod>> {
    let selector = BTreeMap::from([(label.clone(), value.clone())]);
    let pods = rollout::pods_with_labels(cluster, namespace, &selector).await?;
    if pods.is_empty() {
        return Err(Error::NoGatewayPods {
            namespace: namespace.to_owned(),
            selector: format!("{label}={value}"),
        });
    }
    Ok(pods)
}

/// The TLS secret the pods behind the kms-api Service mount (the
/// certificate KMS serves), and the operator's CA secret when one is named.
async fn kms_certificates(
    cluster: &Cluster,
    namespace: &str,
    service: &Service,
    ca_secret_name: Option<&str>,
) -> Result<(Option<(String, Secret)>, Option<(String, Secret)>)> {
    let given = async {
        let Some(name) = ca_secret_name else {
            return Ok(None);
        };
        let found = datapath::secrets(cluster, namespace, [name.to_owned()]).await?;
        found
            .into_iter()
            .next()
            .map(Some)
            .ok_or_else(|| Error::Missing {
                kind: "Secret",
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                hint: "name an existing Secret holding ca.crt with --upstream-ca-secret".into(),
            })
    };
    let served = async {
        let labels = service
            .spec
            .as_ref()
            .and_then(|spec| spec.selector.clone())
            .unwrap_or_default();
        if labels.is_empty() {
            return Ok(None);
        }
        let pods = rollout::pods_with_labels(cluster, namespace, &labels).await?;
        datapath::served_tls_secret(cluster, namespace, &pods).await
    };
    tokio::try_join!(served, given)
}

/// The issuer must exist: an Issuer in the namespace of the Certificate, or a ClusterIssuer.
async fn check_issuer(
    cluster: &Cluster,
    api: CertManagerApi,
    istio_namespace: &str,
    args: &ExposeArgs,
) -> Result<()> {
    let kind = args.issuer_kind.as_str();
    let plural = if kind == "Issuer" {
        "issuers"
    } else {
        "clusterissuers"
    };
    let gvk = GroupVersionKind::gvk(api.group(), api.version(), kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    let (issuers, namespace): (Api<DynamicObject>, &str) = if kind == "Issuer" {
        (
            Api::namespaced_with(cluster.client(), istio_namespace, &resource),
            istio_namespace,
        )
    } else {
        (Api::all_with(cluster.client(), &resource), "cluster")
    };
    let found = cluster
        .call(
            &format!("read {plural} {}", args.issuer),
            issuers.get_opt(&args.issuer),
        )
        .await?;
    if found.is_none() {
        return Err(Error::Missing {
            kind: if kind == "Issuer" {
                "Issuer"
            } else {
                "ClusterIssuer"
            },
            namespace: namespace.into(),
            name: args.issuer.clone(),
            hint: format!(
                "name an existing one with --issuer and --issuer-kind; `kubectl get {plural}.{}` lists them",
                api.group()
            ),
        });
    }
    Ok(())
}
