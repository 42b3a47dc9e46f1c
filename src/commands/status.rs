//! `status`: checks every step of the runbook, which the runbook never does.
//! Reachability is checked first, so an unreachable cluster gives one error;
//! then every object the checks need is read concurrently into a snapshot,
//! and `checks::evaluate` turns the snapshot into the report.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{Api, DynamicObject};

use crate::checks::Report;
use crate::checks::evaluate::{self, Names, Snapshot};
use crate::cli::StatusArgs;
use crate::cluster::{Cluster, Target};
use crate::datapath;
use crate::discovery::{
    self, IDENTITY_POLICY_GROUP, IDENTITY_POLICY_VERSION, ISTIO_NETWORKING, ServedApis,
};
use crate::error::{self, Error, Result};
use crate::manifests::exposure::{
    self, CERTIFICATE, DESTINATION_RULE, GATEWAY, KMS_SERVICE, VIRTUAL_SERVICE,
};
use crate::output::{self};
use crate::permissions::{self, Scope};
use crate::progress::Progress;
use crate::rollout;
use crate::wording::count;

const WAIT_INTERVAL: Duration = Duration::from_secs(2);

pub async fn run(target: &Target, args: &StatusArgs) -> Result<()> {
    let names = Names {
        kms_namespace: target.kms_namespace.clone(),
        istio_namespace: target.istio_namespace.clone(),
        deployment: args.names.deployment.clone(),
        token_adapter: args.names.token_adapter.clone(),
        secret: args.names.secret.clone(),
        secret_key: args.names.secret_key.clone(),
        policy: args.names.policy.clone(),
        cluster_flags: target.flags_for_hints(),
    };
    let cluster = Cluster::connect(target).await?;
    let report = match args.wait {
        None => {
            let check = async |served: &ServedApis| check(&cluster, served, &names).await;
            discovery::fetch_while_discovering(&cluster, check).await?.1
        }
        Some(limit) => {
            let served = discovery::discover(&cluster).await?;
            check_until_passing(&cluster, &served, &names, limit).await?
        }
    };
    output::print(&match args.output {
        Some(format) => output::render(&report, format),
        None => report.render_text(),
    })?;
    if report.success {
        Ok(())
    } else {
        Err(Error::ChecksFailed {
            failed: report.summary.failed,
        })
    }
}

/// Checks again every two seconds until every check passes or `limit` has
/// passed; returns the last report.
pub async fn check_until_passing(
    cluster: &Cluster,
    served: &ServedApis,
    names: &Names,
    limit: Duration,
) -> Result<Report> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut progress = Progress::start("checking");
    loop {
        let report = check(cluster, served, names).await?;
        let summary = report.summary;
        if report.all_pass() || tokio::time::Instant::now() + WAIT_INTERVAL > deadline {
            return Ok(report);
        }
        progress.update(&format!(
            "waiting for every check to pass: {}, {} failed",
            count(summary.warnings as i64, "warning", "warnings"),
            summary.failed
        ));
        tokio::time::sleep(WAIT_INTERVAL).await;
    }
}

/// One round of checks.
pub async fn check(cluster: &Cluster, served: &ServedApis, names: &Names) -> Result<Report> {
    match snapshot(cluster, served, names).await {
        Ok(snapshot) => Ok(evaluate::report(&snapshot, names)),
        Err(Error::Forbidden { action, source }) => {
            let snapshot = permissions_only(cluster, served, names).await?;
            Ok(evaluate::unreadable_report(
                &snapshot,
                names,
                &action,
                &error::for_people(&source),
            ))
        }
        Err(other) => Err(other),
    }
}

/// What a user who may not read everything can still be told: the server,
/// and every permission the plugin needs that they lack.
async fn permissions_only(
    cluster: &Cluster,
    served: &ServedApis,
    names: &Names,
) -> Result<Snapshot> {
    let version = cluster
        .call(
            "read the server version",
            cluster.client().apiserver_version(),
        )
        .await?;
    let scope = Scope {
        kms: &names.kms_namespace,
        istio: &names.istio_namespace,
        cert_manager: served.cert_manager(),
    };
    let needs = permissions::for_everything(&scope);
    Ok(Snapshot {
        server: cluster.server().to_owned(),
        server_version: version.git_version,
        permissions_needed: needs.len(),
        missing_permissions: permissions::missing(cluster, &needs).await?,
        served: served.clone(),
        ..Snapshot::default()
    })
}

/// Reads everything the checks look at, in three concurrent batches: the
/// objects by name (and the server's version), then the pods their
/// selectors match, then the secrets those pods mount. An unreachable server
/// ends the run with one error, the first request's.
async fn snapshot(cluster: &Cluster, served: &ServedApis, names: &Names) -> Result<Snapshot> {
    let client = cluster.client();
    let (kms_ns, istio_ns) = (names.kms_namespace.as_str(), names.istio_namespace.as_str());

    let get = |api: Api<DynamicObject>, name: &str| {
        let name = name.to_owned();
        async move {
            let action = format!("read {name}");
            cluster.call(&action, api.get_opt(&name)).await
        }
    };
    let cert_api = served.cert_manager();
    let istio = served.istio_networking();
    let certificate = async {
        let Some(api) = cert_api else { return Ok(None) };
        let resource =
            discovery::api_resource(api.group(), api.version(), "Certificate", "certificates");
        get(
            Api::namespaced_with(client.clone(), istio_ns, &resource),
            CERTIFICATE,
        )
        .await
    };
    let networking = |kind: &'static str, plural: &'static str, name: &'static str| {
        let client = client.clone();
        async move {
            let Some(version) = istio else {
                return Ok(None);
            };
            let resource = discovery::api_resource(ISTIO_NETWORKING, version, kind, plural);
            get(Api::namespaced_with(client, kms_ns, &resource), name).await
        }
    };
    let policy = async {
        if !served.identity_policy() {
            return Ok(None);
        }
        let resource = discovery::api_resource(
            IDENTITY_POLICY_GROUP,
            IDENTITY_POLICY_VERSION,
            "IdentityMappingPolicy",
            "identitymappingpolicies",
        );
        get(
            Api::namespaced_with(client.clone(), istio_ns, &resource),
            &names.policy,
        )
        .await
    };
    let scope = Scope {
        kms: kms_ns,
        istio: istio_ns,
        cert_manager: cert_api,
    };
    let needs = permissions::for_everything(&scope);
    let services: Api<Service> = Api::namespaced(client.clone(), kms_ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), istio_ns);
    let read_service = format!("read service {kms_ns}/{KMS_SERVICE}");
    let read_secret = format!("read secret {istio_ns}/{}", names.secret);
    // The gateway's side: its objects, then the pods it selects, then every
    // secret those pods mount or the objects name.
    let gateway_side = async {
        let (certificate, gateway, destination_rule) = tokio::try_join!(
            certificate,
            networking("Gateway", "gateways", GATEWAY),
            networking("DestinationRule", "destinationrules", DESTINATION_RULE),
        )?;
        let gateway_labels = gateway
            .as_ref()
            .map(evaluate::gateway_labels)
            .unwrap_or_default();
        let gateway_pods = if gateway_labels.is_empty() {
            Vec::new()
        } else {
            rollout::pods_with_labels(cluster, istio_ns, &gateway_labels).await?
        };
        let certificate_secret_name = certificate
            .as_ref()
            .and_then(|cert| cert.data["spec"]["secretName"].as_str())
            .map(str::to_owned);
        let gateway_credential = gateway
            .as_ref()
            .and_then(|gw| gw.data["spec"]["servers"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|server| server["tls"]["credentialName"].as_str().map(str::to_owned))
            .collect::<Vec<_>>();
        let upstream_credential = destination_rule
            .as_ref()
            .and_then(|rule| rule.data["spec"]["trafficPolicy"]["tls"]["credentialName"].as_str())
            .map(str::to_owned);
        // The Certificate's secret, and every secret the gateway may load its
        // certificate or CA from, in one batch.
        let wanted = gateway_pods
            .iter()
            .flat_map(exposure::mounted_secrets)
            .chain(certificate_secret_name.clone())
            .chain(gateway_credential)
            .chain(
                upstream_credential
                    .iter()
                    .flat_map(|name| [name.clone(), format!("{name}-cacert")]),
            );
        let gateway_secrets = datapath::secrets(cluster, istio_ns, wanted).await?;
        let certificate_secret =
            certificate_secret_name.and_then(|name| gateway_secrets.get(&name).cloned());
        Ok((
            certificate,
            certificate_secret,
            gateway,
            destination_rule,
            gateway_pods,
            gateway_secrets,
        ))
    };
    // KMS's side: its Deployment, its pods, the certificate they serve.
    let kms_side = async {
        let (kms, kms_pods) = deployment_and_pods(cluster, kms_ns, &names.deployment).await?;
        let kms_tls_secret = datapath::served_tls_secret(cluster, kms_ns, &kms_pods).await?;
        Ok((kms, kms_pods, kms_tls_secret))
    };
    let (
        version,
        missing_permissions,
        kms_service,
        apikey_secret,
        (token_adapter, token_adapter_pods),
        (kms, kms_pods, kms_tls_secret),
        (certificate, certificate_secret, gateway, destination_rule, gateway_pods, gateway_secrets),
        virtual_service,
        policy,
    ) = tokio::try_join!(
        cluster.call("read the server version", client.apiserver_version()),
        permissions::missing(cluster, &needs),
        cluster.call(&read_service, services.get_opt(KMS_SERVICE)),
        cluster.call(&read_secret, secrets.get_opt(&names.secret)),
        deployment_and_pods(cluster, istio_ns, &names.token_adapter),
        kms_side,
        gateway_side,
        networking("VirtualService", "virtualservices", VIRTUAL_SERVICE),
        policy,
    )?;
    Ok(Snapshot {
        gateway_pods,
        gateway_secrets,
        kms_tls_secret,
        now: jiff::Timestamp::now().as_second(),
        server: cluster.server().to_owned(),
        server_version: version.git_version,
        permissions_needed: needs.len(),
        missing_permissions,
        served: served.clone(),
        kms_service,
        apikey_secret,
        token_adapter,
        token_adapter_pods,
        kms,
        kms_pods,
        certificate,
        certificate_secret,
        gateway,
        virtual_service,
        destination_rule,
        policy,
    })
}

/// A Deployment and the pods its selector matches.
async fn deployment_and_pods(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<(Option<Deployment>, Vec<Pod>)> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let Some(deployment) = cluster
        .call(
            &format!("read deployment {namespace}/{name}"),
            deployments.get_opt(name),
        )
        .await?
    else {
        return Ok((None, Vec::new()));
    };
    let pods = rollout::pods(cluster, namespace, &deployment).await?;
    Ok((Some(deployment), pods))
}
