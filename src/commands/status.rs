//! `status`: checks every step of the runbook, which the runbook never does.
//! Reachability is checked first, so an unreachable cluster gives one error;
//! then every object the checks need is read concurrently into a snapshot,
//! and `checks::evaluate` turns the snapshot into the report.
//!
//! Several contexts (`--context` repeated, `--all-contexts`) are checked
//! concurrently, a bounded number at a time, each within its own deadline,
//! into one `checks::fleet` report. `--save` writes what the checks were
//! decided on and `--from` checks such a file without a cluster.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::{Api, Resource};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::checks::evaluate::Reading;
use crate::checks::fleet::{self, ContextError, ContextResult, ContextRun, FleetReport, Judged};
use crate::checks::proxy_reading::{
    self, GatewayProxies, KmsPart, ProxyReading, kms_cluster_suffix, route_config_name,
};
use crate::checks::saved::{self, Entry};
use crate::checks::snapshot::{
    self, GatewayApiObjects, Injector, KeySecret, Names, ProbeFrom, Snapshot,
};
use crate::checks::{Report, redact};
use crate::cli::{ObjectNameArgs, StatusArgs};
use crate::cluster::apply::{self, Readable, WriteOptions, read_owned};
use crate::cluster::datapath;
use crate::cluster::discovery::{self};
use crate::cluster::injector::{self, ControlPlanes};
use crate::cluster::permissions::{self, Scope};
use crate::cluster::probe;
use crate::cluster::proxy_admin;
use crate::cluster::rollout;
use crate::cluster::run::Run;
use crate::cluster::{self, Cluster, Target};
use crate::error::{self, Error, Result};
use crate::files::private_files::{self, Existing};
use crate::manifests::exposure::KMS_SERVICE;
use crate::objects::apis::ServedApis;
use crate::objects::gateway_api::{
    ApiGateway, BackendTlsPolicy, DEPLOYED_GATEWAY_LABEL, HttpRoute,
};
use crate::objects::injection_record;
use crate::objects::mounts;
use crate::objects::owned::{self, CA_CONFIG_MAP, Owned, Where};
use crate::objects::place::without_owned_field_sets;
use crate::objects::schemas::{
    Certificate, DestinationRule, Gateway, IdentityMappingPolicy, VirtualService,
};
use crate::objects::shared_gateway::Merged;
use crate::terminal::journal::Terminal;
use crate::terminal::output::{self, Format};
use crate::terminal::progress::Progress;
use crate::terminal::wording::count;
use crate::values::defaults;
use crate::values::duration;
use crate::values::host::{Host, parse_host};
use crate::values::probe::Probe;
use crate::values::sidecar;

const WAIT_INTERVAL: Duration = Duration::from_secs(2);
/// How many contexts read their objects at once: a context reading holds
/// its connections, its requests and what it read (about half a megabyte).
const CONCURRENT_CONTEXTS: usize = 30;
/// How many contexts more may open their connections while they wait for
/// their turn to read, so that a turn, when it comes, does not begin with
/// the connection's round trips (benches/NOTES.md).
const OPENING_AHEAD: usize = 20;

/// `target` is the run's cluster selection; `contexts` one target per
/// `--context` given (none when none was).
pub async fn run(target: &Target, contexts: &[Target], args: &StatusArgs) -> Result<()> {
    if let Some(path) = &args.from {
        return from_file(path, contexts, args.output);
    }
    let targets = if args.all_contexts {
        every_context(target)?
    } else if contexts.len() <= 1 {
        return one_context(contexts.first().unwrap_or(target), args).await;
    } else {
        check_known(target, contexts)?;
        contexts.to_vec()
    };
    let (judged, entries) = check_contexts(targets, args).await;
    if let Some(path) = &args.save {
        save(path, entries)?;
    }
    print_fleet(&FleetReport::new(judged), args.output)
}

/// The names `status` looks for in `target`, its hints carrying its flags.
pub fn names_in(target: &Target, names: &ObjectNameArgs) -> Names {
    Names {
        kms_namespace: target.kms_namespace.clone(),
        istio_namespace: target.istio_namespace.clone(),
        deployment: names.deployment.clone(),
        token_adapter: names.token_adapter.clone(),
        secret: names.secret.clone(),
        secret_key: names.secret_key.clone(),
        policy: names.policy.clone(),
        revision: None,
        cluster_flags: target.flags_for_hints(),
        kubectl_flags: target.kubectl_flags(),
        probe: None,
    }
}

/// Where `--probe` sends its requests, when it is given.
fn probe_from(args: &StatusArgs) -> Option<ProbeFrom> {
    args.probe.then_some(ProbeFrom {
        address: args.probe_address,
    })
}

/// One context, printed as `status` always has: its report, or its error.
async fn one_context(target: &Target, args: &StatusArgs) -> Result<()> {
    let names = Names {
        revision: args.revision.clone(),
        probe: probe_from(args),
        ..names_in(target, &args.names)
    };
    let (context, reading) = read_context(target, &names, args.wait, None, None).await?;
    let report = reading.report(&names);
    if let Some(path) = &args.save {
        let run = ContextRun {
            context,
            names,
            result: ContextResult::Read(Box::new(reading)),
        };
        save(path, vec![Entry::of(&run)])?;
    }
    print_report(&report, args.output, None)
}

fn print_report(report: &Report, format: Option<Format>, checked_at: Option<String>) -> Result<()> {
    /// A report from a saved snapshot says when the checks looked.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Dated<'a> {
        #[serde(flatten)]
        report: &'a Report,
        checked_at: &'a str,
    }
    output::print(&match (format, &checked_at) {
        (Some(format), Some(checked_at)) => output::render(&Dated { report, checked_at }, format),
        (Some(format), None) => output::render(report, format),
        (None, Some(checked_at)) => format!(
            "{}Checked as of {checked_at}, from a saved snapshot.\n",
            report.render_text()
        ),
        (None, None) => report.render_text(),
    })?;
    if report.success {
        Ok(())
    } else {
        Err(Error::ChecksFailed {
            failed: report.summary.failed,
        })
    }
}

fn print_fleet(fleet: &FleetReport, format: Option<Format>) -> Result<()> {
    output::print(&match format {
        Some(format) => output::render(fleet, format),
        None => fleet.render_text(),
    })?;
    match fleet.exit_status {
        error::ExitStatus::Success => Ok(()),
        worst => Err(Error::ContextsFailed {
            failed: fleet.not_passing(),
            total: fleet.contexts.len(),
            worst,
        }),
    }
}

/// A target per context of the kubeconfig, in its order.
fn every_context(target: &Target) -> Result<Vec<Target>> {
    let (names, _) = cluster::contexts(target)?;
    if names.is_empty() {
        return Err(Error::InvalidFlag {
            flag: "--all-contexts",
            reason: "the kubeconfig has no contexts".into(),
        });
    }
    Ok(names
        .into_iter()
        .map(|context| Target {
            context: Some(context),
            ..target.clone()
        })
        .collect())
}

/// Refuses, before any connection, a context the kubeconfig lacks.
fn check_known(target: &Target, targets: &[Target]) -> Result<()> {
    let (available, _) = cluster::contexts(target)?;
    match targets
        .iter()
        .filter_map(|t| t.context.as_ref())
        .find(|name| !available.contains(name))
    {
        Some(name) => Err(Error::UnknownContext {
            name: name.clone(),
            available,
        }),
        None => Ok(()),
    }
}

/// Checks every target, `CONCURRENT_CONTEXTS` at a time: as soon as one
/// is done the next starts, so a slow context holds up no other. Up to
/// `OPENING_AHEAD` more contexts are connected ahead of their turn (see
/// `read_context`). Of each context only its judgement is kept, and, with
/// `--save`, the file's text for it: never every snapshot at once. Both come
/// back in the targets' order.
async fn check_contexts(targets: Vec<Target>, args: &StatusArgs) -> (Vec<Judged>, Vec<Entry>) {
    let total = targets.len();
    let mut progress = Progress::start(&format!("checking {total} contexts"));
    let mut done = Vec::with_capacity(total);
    let turns = Semaphore::new(CONCURRENT_CONTEXTS);
    let turns = &turns;
    let mut checked = futures::stream::iter(targets.into_iter().enumerate())
        // Boxed: a finished context's task may outlive it a while (a waker
        // of it held elsewhere), and should not keep its whole state then.
        .map(|(index, target)| async move {
            (index, Box::pin(check_context(target, args, turns)).await)
        })
        .buffer_unordered(CONCURRENT_CONTEXTS + OPENING_AHEAD);
    while let Some((index, run)) = checked.next().await {
        let entry = args.save.is_some().then(|| Entry::of(&run));
        done.push((index, run.judge(), entry));
        progress.update(&format!("checked {} of {total} contexts", done.len()));
    }
    done.sort_by_key(|(index, _, _)| *index);
    let entries = done
        .iter_mut()
        .filter_map(|(_, _, entry)| entry.take())
        .collect();
    (
        done.into_iter().map(|(_, judged, _)| judged).collect(),
        entries,
    )
}

/// One context of several: its reading, or its error as a person reads
/// it, within the context's own deadline from its turn of `turns`.
async fn check_context(target: Target, args: &StatusArgs, turns: &Semaphore) -> ContextRun {
    let names = Names {
        revision: args.revision.clone(),
        probe: probe_from(args),
        ..names_in(&target, &args.names)
    };
    let context = target.context.clone().unwrap_or_default();
    let deadline = context_deadline(&target, args.wait);
    let result = match read_context(&target, &names, args.wait, deadline, Some(turns)).await {
        Ok((_, reading)) => ContextResult::Read(Box::new(reading)),
        Err(err) => {
            let report = error::Report {
                error: &err,
                cluster_flags: &names.cluster_flags,
            };
            ContextResult::Failed(ContextError {
                message: report.message(),
                hint: report.hint(),
                exit_code: err.exit_status().code(),
            })
        }
    };
    ContextRun {
        context,
        names,
        result,
    }
}

/// How long one of several contexts may take from its turn: its request
/// timeout (each batch of reads is concurrent, so a healthy cluster needs a
/// few round trips), plus the `--wait`; no limit when requests have none.
fn context_deadline(target: &Target, wait: Option<Duration>) -> Option<Duration> {
    let limit = target.request_timeout;
    (!limit.is_zero()).then(|| limit + wait.unwrap_or_default())
}

/// Connects to `target` and reads it, waiting for every check to pass when
/// asked. What needs nothing else starts at once: discovery and the
/// server's version, which open the context's two connections. The reads
/// of the checks wait for the context's turn, when `turns` are given, and
/// must end within `deadline` from it, when one is given. Returns the
/// context's name and the last reading.
async fn read_context(
    target: &Target,
    names: &Names,
    wait: Option<Duration>,
    deadline: Option<Duration>,
    turns: Option<&Semaphore>,
) -> Result<(String, Reading)> {
    let cluster = Cluster::connect(target).await?;
    let reading = match wait {
        None => {
            let run = Run::without_discovery(&cluster, target, WriteOptions::default(), &Terminal);
            let read = async |run: Run<'_>| {
                let reads = async || read(run.cluster, run.served, names).await;
                in_turn(run.cluster, turns, deadline, reads).await
            };
            let (fetched, _) = tokio::join!(
                discovery::fetch_while_discovering(run, read),
                cluster.version_opening_tunnel()
            );
            fetched?.1
        }
        Some(limit) => {
            let (served, _) = tokio::join!(
                discovery::discover(&cluster),
                cluster.version_opening_tunnel()
            );
            let served = served?;
            let reads = async || {
                read_until_passing(&cluster, &served, names, limit, deadline.is_none()).await
            };
            in_turn(&cluster, turns, deadline, reads).await?
        }
    };
    Ok((cluster.context().to_owned(), reading))
}

/// Waits for a turn of `turns` (when given), then runs `reads` within
/// `deadline` (when given).
async fn in_turn<T>(
    cluster: &Cluster,
    turns: Option<&Semaphore>,
    deadline: Option<Duration>,
    reads: impl AsyncFnOnce() -> Result<T>,
) -> Result<T> {
    let _turn = match turns {
        Some(turns) => Some(turns.acquire().await.expect("the turns are never closed")),
        None => None,
    };
    match deadline {
        None => reads().await,
        Some(limit) => tokio::time::timeout(limit, reads())
            .await
            .map_err(|_| Error::Timeout {
                server: cluster.server().to_owned(),
                timeout: duration::display(limit),
            })?,
    }
}

/// Writes the contexts to `path`, replacing what was there.
fn save(path: &Path, entries: Vec<Entry>) -> Result<()> {
    let contexts = count(entries.len() as i64, "context", "contexts");
    private_files::write(path, saved::to_text(entries).as_bytes(), Existing::Replace)?;
    eprintln!("Saved the snapshot of {contexts} to {}.", path.display());
    Ok(())
}

/// Checks a snapshot file: one context prints as a live run of it would,
/// several as a fleet; `contexts` (when given) selects among them.
fn from_file(path: &Path, contexts: &[Target], format: Option<Format>) -> Result<()> {
    let text = std::fs::read(path).map_err(|source| Error::LocalFile {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    let invalid = |reason: String| Error::InvalidSnapshot {
        path: path.to_owned(),
        reason,
    };
    let mut runs = saved::parse(&text).map_err(invalid)?;
    let wanted: Vec<&String> = contexts.iter().filter_map(|t| t.context.as_ref()).collect();
    if let Some(missing) = wanted
        .iter()
        .find(|name| !runs.iter().any(|run| &&run.context == *name))
    {
        let held: Vec<&str> = runs.iter().map(|run| run.context.as_str()).collect();
        return Err(Error::InvalidFlag {
            flag: "--context",
            reason: format!(
                "the snapshot holds no context {missing} (it holds {})",
                held.join(", ")
            ),
        });
    }
    if !wanted.is_empty() {
        runs.retain(|run| wanted.contains(&&run.context));
    }
    match runs.as_slice() {
        [] => Err(invalid("it holds no context".into())),
        [
            ContextRun {
                names,
                result: ContextResult::Read(reading),
                ..
            },
        ] => {
            let checked_at = fleet::timestamp(reading.snapshot().now);
            print_report(&reading.report(names), format, Some(checked_at))
        }
        runs => print_fleet(&FleetReport::of(runs), format),
    }
}

/// Reads again every two seconds until every check passes or `limit` has
/// passed; returns the last reading. `progress` shows the wait on stderr.
async fn read_until_passing(
    cluster: &Cluster,
    served: &ServedApis,
    names: &Names,
    limit: Duration,
    progress: bool,
) -> Result<Reading> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut shown = progress.then(|| Progress::start("checking"));
    loop {
        let reading = read(cluster, served, names).await?;
        let report = reading.report(names);
        let summary = report.summary;
        if report.settled() || tokio::time::Instant::now() + WAIT_INTERVAL > deadline {
            return Ok(reading);
        }
        if let Some(shown) = shown.as_mut() {
            shown.update(&format!(
                "waiting for every check to pass: {}, {} failed",
                count(summary.warnings as i64, "warning", "warnings"),
                summary.failed
            ));
        }
        tokio::time::sleep(WAIT_INTERVAL).await;
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
    let reading = read_until_passing(cluster, served, names, limit, true).await?;
    Ok(reading.report(names))
}

/// One round of checks.
pub async fn check(cluster: &Cluster, served: &ServedApis, names: &Names) -> Result<Report> {
    Ok(read(cluster, served, names).await?.report(names))
}

/// One round of reads: the whole snapshot, or what a user refused one of
/// them can still be told.
async fn read(cluster: &Cluster, served: &ServedApis, names: &Names) -> Result<Reading> {
    let reading = match snapshot(cluster, served, names).await {
        Ok(snapshot) => Ok(Reading::Complete(snapshot)),
        Err(Error::Forbidden { action, source }) => Ok(Reading::Refused {
            snapshot: permissions_only(cluster, served, names).await?,
            action,
            refusal: error::for_people(&source),
        }),
        Err(other) => Err(other),
    };
    // The next reading opens a connection for its port-forward again.
    cluster.forget_version().await;
    reading
}

/// What a user who may not read everything can still be told: the server,
/// and every permission the plugin needs that they lack.
async fn permissions_only(
    cluster: &Cluster,
    served: &ServedApis,
    names: &Names,
) -> Result<Snapshot> {
    // The refused batch's answer, when it came before the refusal.
    let version = cluster.version_opening_tunnel().await?;
    let scope = Scope {
        kms: &names.kms_namespace,
        istio: &names.istio_namespace,
        cert_manager: served.cert_manager(),
        gateway_api: served.gateway_api(),
    };
    let needs = permissions::for_everything(&scope);
    Ok(Snapshot {
        server: cluster.server().to_owned(),
        server_version: version.git_version,
        permissions_needed: needs.len(),
        missing_permissions: missing(cluster, &needs).await?,
        served: served.clone(),
        now: jiff::Timestamp::now().as_second(),
        ..Snapshot::default()
    })
}

/// The permissions of `needs` the user lacks, as people read them.
async fn missing(cluster: &Cluster, needs: &[permissions::Permission]) -> Result<Vec<String>> {
    let missing = permissions::missing(cluster, needs).await?;
    Ok(missing.iter().map(ToString::to_string).collect())
}

/// Reads everything the checks look at in two concurrent batches, so that a
/// far-away cluster costs two round trips beyond the connection: first
/// every object by name, the server's version, every Gateway, the names and
/// versions of the Istio namespace's ConfigMaps and its pods (the token
/// adapter's and the gateway's are picked from them by their selectors, so
/// neither waits for its owner); then KMS's pods and the certificate they
/// serve, the secrets the gateway pods mount or the objects name, what the
/// gateway proxies hold, where the user may port-forward (the connection
/// for it is opened by the first batch's read of the server's version), the
/// injector's ConfigMaps if they changed since KMS was injected, and, where
/// Istio's Gateway is not there, the Gateway API's route, policy and CA
/// (the first batch reads its Gateway, which says which pods serve it). With
/// `--probe`, a request to each exposed host last. An unreachable server
/// ends the run with one error, the first request's.
async fn snapshot(cluster: &Cluster, served: &ServedApis, names: &Names) -> Result<Snapshot> {
    let (kms_ns, istio_ns) = (names.kms_namespace.as_str(), names.istio_namespace.as_str());
    let at = Where {
        policy: Some(&names.policy),
        apikey_secret: Some(&names.secret),
        ..Where::namespaces(kms_ns, istio_ns)
    };
    let scope = Scope {
        kms: kms_ns,
        istio: istio_ns,
        cert_manager: served.cert_manager(),
        gateway_api: served.gateway_api(),
    };
    let needs = permissions::for_everything(&scope);
    // Reviewed with the rest, in the same round trip; optional.
    let gateway_config = permissions::for_gateway_config(istio_ns);
    let reviewed: Vec<_> = needs.iter().chain(&gateway_config).cloned().collect();
    // Boxed: fifteen reads at once make a large state, which would
    // otherwise sit on the stack with the rest of the run's.
    let first = Box::pin(first_batch(cluster, served, names, &at, &reviewed)).await;
    let FirstBatch {
        version,
        missing_permissions,
        kms_service,
        apikey_secret,
        token_adapter,
        kms,
        istio_pods,
        planes,
        certificate,
        gateway,
        destination_rule,
        every_gateway,
        virtual_service,
        policy,
        api_gateway,
    } = first?;
    let (lacking_gateway_config, missing_permissions): (Vec<_>, Vec<_>) = missing_permissions
        .into_iter()
        .partition(|lacking| gateway_config.contains(lacking));
    // The labels of the pods serving KMS's gateway, and the route
    // configurations of KMS's there.
    let (gateway_selector, kms_routes) = match (&gateway, &api_gateway) {
        (Some(gateway), _) => (
            Some(snapshot::gateway_labels(gateway)),
            vec![classic_route_config(gateway, kms_ns)],
        ),
        (None, Some(api_gateway)) => (
            gateway_api_selector(
                cluster,
                istio_ns,
                api_gateway,
                lacking_gateway_config.is_empty(),
            )
            .await?,
            proxy_reading::gateway_api_route_config_names(api_gateway),
        ),
        (None, None) => (None, Vec::new()),
    };
    let adapter_selector = token_adapter.as_ref().map(rollout::selector_labels);
    // The Istio namespace's pods are sorted out of their list, the rest let
    // go: every context in flight holds its first batch while the second
    // runs.
    let [gateway_pods, token_adapter_pods] = rollout::select(
        istio_pods,
        [gateway_selector.as_ref(), adapter_selector.as_ref()],
    );
    let neighbour_gateways = match &gateway {
        None => Vec::new(),
        Some(kms) => {
            let kms = Merged::of(kms);
            every_gateway
                .into_iter()
                .filter(|other| kms.shares_pods_with(&Merged::of(other), &gateway_pods))
                .map(redact::without_bookkeeping)
                .collect()
        }
    };
    let certificate_secret_name = certificate
        .as_ref()
        .map(|cert| cert.spec.secret_name.clone())
        .filter(|name| !name.is_empty());
    // Every secret the gateway may load its certificate or CA from.
    let wanted = gateway_pods
        .iter()
        .flat_map(mounts::mounted_secrets)
        .chain(certificate_secret_name.clone())
        .chain(credentials_named(
            gateway.as_ref(),
            destination_rule.as_ref(),
        ));
    let kms_part = KmsPart {
        routes: kms_routes,
        cluster_suffix: kms_cluster_suffix(kms_ns),
        hosts: certificate
            .iter()
            .flat_map(|cert| cert.spec.hosts())
            .filter(|host| !matches!(parse_host(host), Ok(Host::Ip(_))))
            .cloned()
            .collect(),
    };
    let proxies = async {
        if lacking_gateway_config.is_empty() && !gateway_pods.is_empty() {
            Some(read_proxies(cluster, at.istio_namespace, &kms_part, &gateway_pods).await)
        } else {
            None
        }
    };
    let kms_side = async {
        match &kms {
            None => Ok((Vec::new(), None)),
            Some(kms) => {
                let labels = rollout::selector_labels(kms);
                datapath::pods_and_served_tls_secret(cluster, kms_ns, &labels, Some(kms)).await
            }
        }
    };
    let ((kms_pods, kms_tls_secret), gateway_secrets, proxies, injector, gateway_api) = tokio::try_join!(
        kms_side,
        datapath::secrets(cluster, istio_ns, wanted),
        async { Ok(proxies.await) },
        injector_now(cluster, planes, kms.as_ref(), names.revision.as_deref()),
        gateway_api_rest(cluster, served, &at, gateway.is_none()),
    )?;
    let gateway_api = GatewayApiObjects {
        gateway: api_gateway,
        ..gateway_api
    };
    let certificate_secret =
        certificate_secret_name.and_then(|name| gateway_secrets.get(&name).cloned());
    let gateway_proxies = match proxies {
        _ if !lacking_gateway_config.is_empty() => GatewayProxies::Skipped {
            reason: format!(
                "reading what istiod sent the gateway proxies needs {}",
                lacking_gateway_config
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            hint: format!(
                "an administrator grants it with {} | kubectl apply -f -",
                names.command(
                    "rbac",
                    " --for status --read-gateway-config --to-user YOUR_USER"
                )
            ),
        },
        Some(readings) => GatewayProxies::Read(readings),
        // Nothing read: no Gateway, or no pod serves it.
        None => GatewayProxies::Skipped {
            reason: "no gateway pod serves KMS's Gateway to read".into(),
            hint: String::new(),
        },
    };
    let probes = match &names.probe {
        None => None,
        Some(from) => Some(
            probe_hosts(
                cluster,
                from,
                certificate.as_ref(),
                certificate_secret.as_ref(),
                virtual_service
                    .as_ref()
                    .and_then(|vs| vs.spec.first_prefix())
                    .or_else(|| gateway_api.route.as_ref()?.spec.first_prefix()),
            )
            .await,
        ),
    };
    let pods = |pods: Vec<Pod>| pods.into_iter().map(redact::pod).collect::<Vec<_>>();
    Ok(Snapshot {
        gateway_pods: pods(gateway_pods),
        gateway_secrets: gateway_secrets
            .into_iter()
            .map(|(name, secret)| (name, redact::certificates_only(secret)))
            .collect(),
        kms_tls_secret: kms_tls_secret
            .map(|(name, secret)| (name, redact::certificates_only(secret))),
        now: jiff::Timestamp::now().as_second(),
        server: cluster.server().to_owned(),
        server_version: version.git_version,
        permissions_needed: needs.len(),
        missing_permissions: missing_permissions
            .iter()
            .map(ToString::to_string)
            .collect(),
        served: served.clone(),
        kms_service: kms_service.map(redact::without_bookkeeping),
        apikey_secret: apikey_secret.map(|secret| KeySecret::of(&secret, &names.secret_key)),
        token_adapter,
        token_adapter_pods: pods(token_adapter_pods),
        kms,
        kms_pods: pods(kms_pods),
        certificate: certificate.map(redact::without_bookkeeping),
        certificate_secret: certificate_secret.map(redact::certificates_only),
        gateway: gateway.map(redact::without_bookkeeping),
        gateway_proxies,
        probes,
        neighbour_gateways,
        virtual_service: virtual_service.map(redact::without_bookkeeping),
        destination_rule: destination_rule.map(redact::without_bookkeeping),
        policy: policy.map(redact::without_bookkeeping),
        gateway_api: GatewayApiObjects {
            gateway: gateway_api.gateway.map(redact::without_bookkeeping),
            route: gateway_api.route.map(redact::without_bookkeeping),
            policy: gateway_api.policy.map(redact::without_bookkeeping),
            ca: gateway_api.ca.map(redact::without_bookkeeping),
        },
        injector: Some(injector),
    })
}

/// What `status` reads first: everything that needs no other answer.
struct FirstBatch {
    version: k8s_openapi::apimachinery::pkg::version::Info,
    /// Of the permissions reviewed, those the user lacks.
    missing_permissions: Vec<permissions::Permission>,
    kms_service: Option<Service>,
    apikey_secret: Option<Secret>,
    token_adapter: Option<Deployment>,
    kms: Option<Deployment>,
    /// Every pod of the Istio namespace: the token adapter's and the
    /// gateway's among them.
    istio_pods: Vec<Pod>,
    planes: ControlPlanes,
    certificate: Option<Certificate>,
    gateway: Option<Gateway>,
    destination_rule: Option<DestinationRule>,
    /// Every Gateway of the cluster, KMS's own among them.
    every_gateway: Vec<Gateway>,
    virtual_service: Option<VirtualService>,
    policy: Option<IdentityMappingPolicy>,
    /// The Gateway API's Gateway; the rest of its objects are read in the
    /// second batch, only where Istio's Gateway is not there.
    api_gateway: Option<ApiGateway>,
}

/// Reads, all at once, what `status` needs no other answer to ask for.
async fn first_batch(
    cluster: &Cluster,
    served: &ServedApis,
    names: &Names,
    at: &Where<'_>,
    reviewed: &[permissions::Permission],
) -> Result<FirstBatch> {
    let client = cluster.client();
    let (kms_ns, istio_ns) = (at.kms_namespace, at.istio_namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), kms_ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), istio_ns);
    let read_service = format!("read service {kms_ns}/{KMS_SERVICE}");
    let read_secret = format!("read secret {istio_ns}/{}", names.secret);
    let no_labels = BTreeMap::new();
    let (
        version,
        missing_permissions,
        kms_service,
        apikey_secret,
        token_adapter,
        kms,
        istio_pods,
        planes,
        certificate,
        gateway,
        destination_rule,
        every_gateway,
        virtual_service,
        policy,
        api_gateway,
    ) = tokio::try_join!(
        cluster.version_opening_tunnel(),
        permissions::missing(cluster, reviewed),
        lean(cluster.call(&read_service, services.get_opt(KMS_SERVICE))),
        lean(cluster.call(&read_secret, secrets.get_opt(&names.secret))),
        deployment(cluster, istio_ns, &names.token_adapter),
        deployment(cluster, kms_ns, &names.deployment),
        rollout::pods_with_labels(cluster, istio_ns, &no_labels),
        injector::read_index(cluster, istio_ns),
        read_lean::<Certificate>(cluster, served, at, &owned::CERTIFICATE_OBJECT),
        read_lean::<Gateway>(cluster, served, at, &owned::GATEWAY_OBJECT),
        read_lean::<DestinationRule>(cluster, served, at, &owned::DESTINATION_RULE_OBJECT),
        async {
            let every = apply::list_everywhere::<Gateway>(cluster, served, &owned::GATEWAY_OBJECT);
            Ok(every
                .await?
                .into_iter()
                .map(without_owned_field_sets)
                .collect::<Vec<_>>())
        },
        read_lean::<VirtualService>(cluster, served, at, &owned::VIRTUAL_SERVICE_OBJECT),
        read_lean::<IdentityMappingPolicy>(cluster, served, at, &owned::POLICY),
        async {
            if served.gateway_api() {
                read_lean::<ApiGateway>(cluster, served, at, &owned::KMS_GATEWAY_OBJECT).await
            } else {
                Ok(None)
            }
        },
    )?;
    Ok(FirstBatch {
        version,
        missing_permissions,
        kms_service,
        apikey_secret,
        token_adapter,
        kms,
        istio_pods,
        planes,
        certificate,
        gateway,
        destination_rule,
        every_gateway,
        virtual_service,
        policy,
        api_gateway,
    })
}

/// `read`'s object without its owned field sets, dropped as soon as it is
/// parsed: a batch ends with its last answer, and every context in flight
/// would hold them until then.
async fn lean<K: Resource>(read: impl Future<Output = Result<Option<K>>>) -> Result<Option<K>> {
    Ok(read.await?.map(without_owned_field_sets))
}

/// The owned object `owned` where `at` puts it, `lean`.
async fn read_lean<K: Readable>(
    cluster: &Cluster,
    served: &ServedApis,
    at: &Where<'_>,
    owned: &Owned,
) -> Result<Option<K>> {
    lean(read_owned::<K>(cluster, served, at, owned)).await
}

/// The rest of what `expose --api gateway-api` writes (the route, the
/// policy and the CA's ConfigMap), read by name at once; nothing where
/// Istio's Gateway exposes KMS (`wanted` false) or the cluster does not
/// serve the Gateway API.
async fn gateway_api_rest(
    cluster: &Cluster,
    served: &ServedApis,
    at: &Where<'_>,
    wanted: bool,
) -> Result<GatewayApiObjects> {
    if !wanted || !served.gateway_api() {
        return Ok(GatewayApiObjects::default());
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client(), at.kms_namespace);
    let read_ca = format!("read configmap {}/{CA_CONFIG_MAP}", at.kms_namespace);
    let (route, policy, ca) = tokio::try_join!(
        read_lean::<HttpRoute>(cluster, served, at, &owned::HTTP_ROUTE_OBJECT),
        read_lean::<BackendTlsPolicy>(cluster, served, at, &owned::BACKEND_TLS_POLICY_OBJECT),
        lean(cluster.call(&read_ca, config_maps.get_opt(CA_CONFIG_MAP))),
    )?;
    Ok(GatewayApiObjects {
        gateway: None,
        route,
        policy,
        ca,
    })
}

/// `--probe`: a request to each host of the Certificate, at the address
/// given or its own, trusting the CA the Certificate's secret names
/// (`ca.crt`), for the route's path prefix (the VirtualService's or the
/// HTTPRoute's); all at once.
async fn probe_hosts(
    cluster: &Cluster,
    from: &ProbeFrom,
    certificate: Option<&Certificate>,
    secret: Option<&Secret>,
    prefix: Option<&str>,
) -> Vec<Probe> {
    let ca = secret
        .and_then(|secret| mounts::secret_data(secret, "ca.crt"))
        .unwrap_or_default();
    let prefix = prefix.unwrap_or(defaults::PATH_PREFIX);
    let path = format!("{}/", prefix.trim_end_matches('/'));
    let timeout = cluster.request_timeout().unwrap_or(Duration::from_secs(10));
    let hosts = certificate
        .into_iter()
        .flat_map(|cert| cert.spec.hosts())
        .cloned()
        .collect::<Vec<_>>();
    futures::future::join_all(
        hosts
            .iter()
            .map(|host| probe::probe(host, from.address, ca, &path, timeout)),
    )
    .await
}

/// The route configuration of a classic Gateway's HTTPS server in
/// `kms_namespace`.
fn classic_route_config(gateway: &Gateway, kms_namespace: &str) -> String {
    let server = gateway.spec.https_server();
    route_config_name(
        server.and_then(|s| s.port.number).unwrap_or(443),
        server
            .and_then(|s| s.port.name.as_deref())
            .unwrap_or("https"),
        gateway.metadata.name.as_deref().unwrap_or(owned::GATEWAY),
        kms_namespace,
    )
}

/// The labels of the pods that serve KMS's Gateway API Gateway: those
/// istiod deployed for it carry its name; for a Gateway attached to a
/// gateway Service, those the Service selects. Reading the Service is part
/// of reading the gateway configuration: without that permission
/// (`may_read_service`), or where the Service selects nothing, no pod is
/// named.
async fn gateway_api_selector(
    cluster: &Cluster,
    istio_namespace: &str,
    gateway: &ApiGateway,
    may_read_service: bool,
) -> Result<Option<BTreeMap<String, String>>> {
    let Some(service) = gateway.spec.attached_service(istio_namespace) else {
        let name = gateway.metadata.name.clone().unwrap_or_default();
        return Ok(Some(BTreeMap::from([(
            DEPLOYED_GATEWAY_LABEL.to_owned(),
            name,
        )])));
    };
    if !may_read_service {
        return Ok(None);
    }
    let services: Api<Service> = Api::namespaced(cluster.client(), istio_namespace);
    let read = format!("read service {istio_namespace}/{service}");
    let selector = cluster
        .call(&read, services.get_opt(service))
        .await?
        .and_then(|service| service.spec?.selector)
        .filter(|selector| !selector.is_empty());
    Ok(selector)
}

/// What each ready gateway pod (in `istio_namespace`) holds of KMS's part
/// of its configuration, read from its proxy's admin interface, all pods at
/// once; a proxy that cannot be read says why.
async fn read_proxies(
    cluster: &Cluster,
    istio_namespace: &str,
    kms_part: &KmsPart,
    pods: &[Pod],
) -> Vec<ProxyReading> {
    let names = kms_part.config_names();
    let ready = pods.iter().filter(|pod| snapshot::pod_ready(pod));
    futures::future::join_all(ready.map(async |pod| {
        let name = pod.metadata.name.clone().unwrap_or_default();
        match proxy_admin::config_dump(cluster, istio_namespace, &name, &names).await {
            Ok(dump) => kms_part.extract(&name, &dump),
            Err(err) => ProxyReading {
                pod: name,
                unreadable: Some(err.to_string()),
                ..ProxyReading::default()
            },
        }
    }))
    .await
}

/// The control plane KMS's sidecar is compared with: `explicit`
/// (`--revision`), else the one its injection names, else the one
/// `inject` would choose; and what it injects now. While the revision's
/// ConfigMaps carry the versions KMS's injection recorded, that is what
/// the injection recorded, and their data is not read.
async fn injector_now(
    cluster: &Cluster,
    mut planes: ControlPlanes,
    kms: Option<&Deployment>,
    explicit: Option<&str>,
) -> Result<Injector> {
    let unavailable = |err: Error| Injector::Unavailable {
        problem: err.to_string(),
        hint: err.hint().unwrap_or_default(),
    };
    let injected = kms.and_then(injection_record::injected_revision);
    let (revision, chosen_by) = match planes.choose(explicit, injected.as_deref()) {
        Ok(chosen) => chosen,
        Err(err) => return Ok(unavailable(err)),
    };
    let inputs = planes.inputs(&revision);
    if let Some(kms) = kms
        && let Some(fingerprint) =
            injection_record::unchanged_fingerprint(kms, &revision, inputs.as_deref())
    {
        return Ok(Injector::Now {
            fingerprint: fingerprint.to_owned(),
            proxy_image: kms
                .spec
                .as_ref()
                .and_then(|spec| sidecar::template_proxy_image(&spec.template))
                .map(str::to_owned),
            revision,
            chosen_by,
        });
    }
    planes.read_inputs(cluster, &revision).await?;
    Ok(match planes.injects_now(&revision) {
        Ok(now) => Injector::Now {
            fingerprint: now.fingerprint,
            proxy_image: now.proxy_image,
            revision: now.revision,
            chosen_by,
        },
        Err(err) => unavailable(err),
    })
}

/// The secrets the Gateway and the DestinationRule name by
/// `credentialName` (and the `-cacert` companion Istio looks for).
fn credentials_named(gateway: Option<&Gateway>, rule: Option<&DestinationRule>) -> Vec<String> {
    let served = gateway
        .into_iter()
        .flat_map(|gw| &gw.spec.servers)
        .filter_map(|server| server.tls.as_ref()?.credential_name.clone());
    let upstream = rule
        .and_then(|rule| rule.spec.tls()?.credential_name.clone())
        .into_iter()
        .flat_map(|name| [format!("{name}-cacert"), name]);
    served.chain(upstream).collect()
}

/// A Deployment, if it exists, reduced to what the snapshot keeps of it as
/// soon as it is parsed (`redact::deployment`): the second batch reads no
/// more of it (its selector, its template's secrets and containers, its
/// injection record), and every context in flight holds it until its
/// checks run.
async fn deployment(cluster: &Cluster, namespace: &str, name: &str) -> Result<Option<Deployment>> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let found = cluster
        .call(
            &format!("read deployment {namespace}/{name}"),
            deployments.get_opt(name),
        )
        .await?;
    Ok(found.map(redact::deployment))
}
