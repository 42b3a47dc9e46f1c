//! `wizard`: the whole runbook for a person at a terminal, or replayed from an
//! answers file. It shows what `status` finds and asks only for what is
//! missing; it then fetches what all four steps (`crate::steps`) depend on
//! at once, over one connection, and plans them. The plan names every unmet
//! prerequisite of every step, or shows each field an object would gain,
//! change or lose, and is confirmed once. Only then do the steps' own
//! `apply` functions run: the wizard never writes to the cluster by itself,
//! and cancelling any prompt leaves the cluster as it was.

use std::io::IsTerminal;

use dialoguer::{Confirm, Input, Password, Select};

use crate::checks::snapshot::Names;
use crate::checks::{CheckId, Outcome, Report};
use crate::cli::{ObjectNameArgs, WizardArgs};
use crate::cluster::apply::{self, ApplyOptions, FieldChange, Preview, WriteOptions, read_owned};
use crate::cluster::discovery;
use crate::cluster::run::Run;
use crate::cluster::{self, Cluster, Target};
use crate::commands::status;
use crate::commands::uninstall as commands_uninstall;
use crate::error::{Error, Result, Unfinished};
use crate::files::answers::Answers;
use crate::objects::apis::ServedApis;
use crate::objects::owned::{self, Where};
use crate::objects::schemas::{Certificate, IdentityMappingPolicy};
use crate::steps::apikey::{self as apikey_step, ApikeyOptions, Restart, SecretChange};
use crate::steps::exposure::{self, ExposeOptions, ExposureApi};
use crate::steps::identity::{self, MapIdentityOptions};
use crate::steps::injection::{self, InjectOptions};
use crate::steps::uninstall::UninstallOptions;
use crate::terminal::journal::Terminal;
use crate::terminal::output;
use crate::terminal::wording;
use crate::values::apikey::{self, ApiKey};
use crate::values::crn;
use crate::values::defaults;
use crate::values::exposure as values_exposure;
use crate::values::host;

fn on_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// A prompt's outcome: Esc, Ctrl-C or a closed terminal cancel the wizard.
fn answered<T>(result: dialoguer::Result<Option<T>>) -> Result<T> {
    match result {
        Ok(Some(value)) => Ok(value),
        _ => {
            let _ = console::Term::stderr().show_cursor();
            Err(Error::Cancelled)
        }
    }
}

/// Which API to expose KMS through, the first item being Istio's on
/// `istio_pods` (the gateway pods that would serve it, or those still to
/// be named).
fn choose_api(istio_pods: &str) -> Result<ExposureApi> {
    let choice = answered(
        Select::new()
            .with_prompt("Expose KMS through")
            .items([
                format!("Istio's Gateway and VirtualService, on {istio_pods}"),
                "the Gateway API, on a gateway istiod deploys for KMS".to_owned(),
            ])
            .default(0)
            .interact_opt(),
    )?;
    Ok(if choice == 1 {
        ExposureApi::GatewayApi
    } else {
        ExposureApi::Istio
    })
}

/// With the setup complete, whether to take it back out instead of
/// reviewing it again.
fn choose_uninstall() -> Result<bool> {
    let choice = answered(
        Select::new()
            .with_prompt("The setup is complete. What now?")
            .items(["Review it, and apply what changed", "Uninstall it"])
            .default(0)
            .interact_opt(),
    )?;
    Ok(choice == 1)
}

fn check_failed(report: &Report, id: CheckId) -> bool {
    report
        .categories
        .iter()
        .flat_map(|c| &c.checks)
        .any(|c| c.id == id && c.result != Outcome::Pass)
}

pub async fn run(target: &Target, args: &WizardArgs) -> Result<()> {
    let (target, loaded) = start(target, args)?;
    let cluster = Cluster::connect(&target).await?;
    let names = Names {
        revision: (args.inject_tools.revision.clone())
            .or_else(|| loaded.as_ref().and_then(|answers| answers.revision.clone())),
        ..status::names_in(&target, &object_names(loaded.as_ref(), args))
    };
    // One connection and one discovery serve the whole run.
    let served = discovery::discover(&cluster).await?;
    let run = Run::new(
        &cluster,
        &target,
        &served,
        WriteOptions::default(),
        &Terminal,
    );
    let before = status::check(&cluster, &served, &names).await?;
    eprintln!("{}", before.render_text());
    let interactive = loaded.is_none();
    if interactive && before.summary.failed == 0 && choose_uninstall()? {
        return commands_uninstall::carry_out(run, &uninstall_options(&names, args)).await;
    }
    let (mut answers, key) = answers_and_key(run, loaded, args, &names, &before).await?;
    // A missing sidecar, or a stale one, is injected.
    let inject_needed =
        check_failed(&before, CheckId::Sidecar) || check_failed(&before, CheckId::ProxyVersion);
    let mut options = StepOptions::from_answers(&answers, &names, args);
    let found = fetch_all(run, &options, key.is_some(), inject_needed).await;
    let plans = plan_all(
        run,
        found,
        (&mut options, &mut answers),
        (key.as_ref(), &names),
        interactive,
    )
    .await?;
    if let Some(path) = &args.save_answers {
        save_answers(&answers, cluster.context(), path)?;
    }
    show_plan(run, &plans, &answers, key.as_ref(), inject_needed, &names);
    if !args.yes {
        confirm("Apply this plan?")?;
    }
    apply_all(run, &options, plans, key.as_ref()).await?;
    report_after(run, &names, args.timeout).await
}

/// Checks the run can be confirmed, and reads the answers file or lets the
/// person choose a context; returns where the run works.
fn start(target: &Target, args: &WizardArgs) -> Result<(Target, Option<Answers>)> {
    let interactive = args.answers.is_none();
    if interactive && !on_terminal() {
        return Err(Error::NeedsTerminal);
    }
    if !interactive && !args.yes && !on_terminal() {
        return Err(Error::InvalidFlag {
            flag: "--yes",
            reason: "without a terminal the plan cannot be confirmed; pass --yes to apply it"
                .into(),
        });
    }
    let mut target = target.clone();
    let loaded = args.answers.as_deref().map(Answers::load).transpose()?;
    if let Some(answers) = &loaded {
        target.context = answers.context.clone().or(target.context);
        target.kms_namespace = answers.kms_namespace.clone();
        target.istio_namespace = answers.istio_namespace.clone();
    } else {
        choose_context(&mut target)?;
    }
    Ok((target, loaded))
}

/// The objects' names: the answers file's, or without one the flags'.
fn object_names(loaded: Option<&Answers>, args: &WizardArgs) -> ObjectNameArgs {
    match loaded {
        Some(answers) => ObjectNameArgs {
            deployment: answers.deployment.clone(),
            token_adapter: answers.token_adapter.clone(),
            secret: answers.secret.clone(),
            secret_key: answers.secret_key.clone(),
            policy: answers.policy.clone(),
        },
        None => args.names.clone(),
    }
}

/// Taking a complete setup back out: the secrets stay, as `uninstall`
/// without flags leaves them.
fn uninstall_options(names: &Names, args: &WizardArgs) -> UninstallOptions {
    UninstallOptions {
        deployment: names.deployment.clone(),
        policy: names.policy.clone(),
        secret: names.secret.clone(),
        delete_certificate_secret: false,
        delete_apikey: false,
        backup_dir: args.inject_tools.backup_dir.clone(),
        timeout: args.timeout,
        yes: false,
        write: WriteOptions::default(),
    }
}

/// The answers (from the file, or asked for what is missing) and the key
/// to store, when one is given or the cluster lacks one.
async fn answers_and_key(
    run: Run<'_>,
    loaded: Option<Answers>,
    args: &WizardArgs,
    names: &Names,
    before: &Report,
) -> Result<(Answers, Option<ApiKey>)> {
    let key_missing = check_failed(before, CheckId::ApiKeySecret);
    match loaded {
        Some(answers) => {
            let key = match args.key_source() {
                Some(source) => Some(apikey::read(&source)?),
                None if key_missing => return Err(Error::NoKeySource),
                None => None,
            };
            Ok((answers, key))
        }
        None => {
            let existing = existing_setup(run.cluster, run.served, names).await?;
            ask(run.target, names, key_missing, before, &existing)
        }
    }
}

/// Each step's options, from the answers and the names.
struct StepOptions {
    expose: ExposeOptions,
    map_identity: MapIdentityOptions,
    apikey: ApikeyOptions,
    inject: InjectOptions,
}

impl StepOptions {
    fn from_answers(answers: &Answers, names: &Names, args: &WizardArgs) -> StepOptions {
        let apply = ApplyOptions::default();
        StepOptions {
            expose: ExposeOptions {
                api: answers
                    .api
                    .as_deref()
                    .map(|word| ExposureApi::from_flag_value(word).expect("validated answers")),
                gateway_service: None,
                move_timeout: None,
                hosts: answers
                    .hosts
                    .iter()
                    .map(|h| host::parse_host(h).expect("validated answers"))
                    .collect(),
                issuer: answers.issuer.clone(),
                issuer_kind: answers.issuer_kind.clone(),
                common_name: answers.common_name.clone(),
                tls_credential_name: None,
                gateway_selector: values_exposure::parse_selector(&answers.gateway_selector)
                    .expect("validated answers"),
                selector_given: true,
                upstream_ca_secret: answers.upstream_ca_secret.clone(),
                path_prefix: defaults::PATH_PREFIX.into(),
                rewrite: defaults::REWRITE.into(),
                port: None,
                apply,
            },
            map_identity: MapIdentityOptions {
                source: crn::parse(&answers.source_crn).expect("validated answers"),
                targets: answers
                    .target_crns
                    .iter()
                    .map(|text| crn::parse_kms_target(text).expect("validated answers"))
                    .collect(),
                name: names.policy.clone(),
                secret: names.secret.clone(),
                secret_key: names.secret_key.clone(),
                strict: false,
                apply,
            },
            apikey: ApikeyOptions {
                secret: names.secret.clone(),
                secret_key: names.secret_key.clone(),
                create: false,
                token_adapter: names.token_adapter.clone(),
                restart: Restart::IfChanged,
                timeout: args.timeout,
            },
            inject: InjectOptions {
                revision: names.revision.clone(),
                ..args
                    .inject_tools
                    .options(&names.deployment, args.timeout, false)
            },
        }
    }
}

/// What every step read, each read's own outcome kept for `plan_all`.
struct FoundAll {
    exposure: Result<exposure::Found>,
    identity: Result<identity::Found>,
    apikey: Result<Option<apikey_step::Found>>,
    injection: Result<Option<injection::Found>>,
}

/// Every step's reads, sent together: storing the key only when there is
/// one to store, injection only when the sidecar check failed.
async fn fetch_all(
    run: Run<'_>,
    options: &StepOptions,
    storing_key: bool,
    inject_needed: bool,
) -> FoundAll {
    let (exposure, identity, apikey, injection) = tokio::join!(
        exposure::fetch(run, &options.expose),
        identity::fetch(run, &options.map_identity),
        async {
            match storing_key {
                true => apikey_step::fetch(run, &options.apikey).await.map(Some),
                false => Ok(None),
            }
        },
        async {
            match inject_needed {
                true => injection::fetch(run, &options.inject).await.map(Some),
                false => Ok(None),
            }
        },
    );
    FoundAll {
        exposure,
        identity,
        apikey,
        injection,
    }
}

/// Every step's plan.
struct Plans {
    /// The objects expose and map-identity write.
    objects: Vec<apply::Planned>,
    apikey: Option<apikey_step::Plan>,
    injection: Option<injection::Plan>,
}

/// Plans every step from what was read. Each step's refusals and unmet
/// prerequisites are gathered, so that all of them are named at once,
/// before the confirmation and before anything is written; what the
/// cluster cannot tell about the gateway is asked for on a terminal, and
/// the exposure read again.
async fn plan_all(
    run: Run<'_>,
    found: FoundAll,
    (options, answers): (&mut StepOptions, &mut Answers),
    (key, names): (Option<&ApiKey>, &Names),
    interactive: bool,
) -> Result<Plans> {
    let target = run.target;
    let mut unmet = Vec::new();
    let exposure_found = gathered(found.exposure, &mut unmet)?;
    let identity_found = gathered(found.identity, &mut unmet)?;
    let key_found = gathered(found.apikey, &mut unmet)?.flatten();
    let injection_found = gathered(found.injection, &mut unmet)?.flatten();
    let exposure_plan = plan_exposure(
        run,
        exposure_found,
        (options, answers),
        interactive,
        &mut unmet,
    )
    .await?;
    // The wizard stores the key itself, so the policy's reference to it is
    // not warned about.
    let identity_plan = identity_found.and_then(|found| {
        planned(
            identity::plan(&found, target, &options.map_identity),
            &mut unmet,
        )
    });
    // The wizard has no --create: say what creates a missing Secret.
    let create_hint = wording::with_flags(
        "the secret is created when STS is installed; check the Istio namespace, or create it \
         with `kubectl kms-sts set-apikey --create` and run the wizard again",
        "kubectl kms-sts ",
        &names.cluster_flags,
    );
    let key_plan = match (key, key_found) {
        (Some(key), Some(found)) => planned(
            apikey_step::plan(found, target, &options.apikey, key, &create_hint),
            &mut unmet,
        ),
        _ => None,
    };
    let injection_plan = injection_found
        .and_then(|found| planned(injection::plan(found, target, &options.inject), &mut unmet));
    // A step without a plan has put its reasons in `unmet`.
    match (exposure_plan, identity_plan) {
        (Some(mut objects), Some(identity_plan)) if unmet.is_empty() => {
            objects.push(identity_plan.policy);
            Ok(Plans {
                objects,
                apikey: key_plan,
                injection: injection_plan,
            })
        }
        _ => Err(Error::together(unmet)),
    }
}

/// The exposure's plan; on a terminal, asks for the gateway label or the CA
/// secret the cluster cannot tell and reads again, until it plans or fails
/// for another reason (added to `unmet`).
async fn plan_exposure(
    run: Run<'_>,
    mut found: Option<exposure::Found>,
    (options, answers): (&mut StepOptions, &mut Answers),
    interactive: bool,
    unmet: &mut Vec<Error>,
) -> Result<Option<Vec<apply::Planned>>> {
    loop {
        let Some(read) = &found else {
            return Ok(None);
        };
        if interactive
            && options.expose.api.is_none()
            && let Some(pods) = read.either_api()
        {
            let (label, value) = &options.expose.gateway_selector;
            let on = format!(
                "the {} in {} labelled {label}={value}",
                wording::count(pods as i64, "gateway pod", "gateway pods"),
                run.target.istio_namespace
            );
            chosen_api(choose_api(&on)?, (options, answers));
        }
        let problems = match exposure::plan(read, run.target, &options.expose) {
            // The wizard never moves between APIs: nothing retires.
            Ok(plan) => return Ok(Some(plan.writes)),
            Err(err) => err.into_problems(),
        };
        if !interactive {
            unmet.extend(
                problems
                    .into_iter()
                    .map(|problem| for_answers_file(problem, run.target)),
            );
            return Ok(None);
        }
        let asked = ask_about_gateway(
            &problems,
            run.target,
            read.serves_gateway_api(),
            (options, answers),
        )?;
        if !asked {
            unmet.extend(problems);
            return Ok(None);
        }
        found = Some(exposure::fetch(run, &options.expose).await?);
    }
}

/// Asks for what the exposure's `problems` say the cluster cannot tell: the
/// gateway pods' label (or, where the cluster serves the Gateway API,
/// whether to use it instead), the Secret holding kms-api's CA. Whether
/// anything was asked.
fn ask_about_gateway(
    problems: &[Error],
    target: &Target,
    serves_gateway_api: bool,
    (options, answers): (&mut StepOptions, &mut Answers),
) -> Result<bool> {
    let mut asked = false;
    for problem in problems {
        match problem {
            Error::NoGatewayPods {
                namespace,
                selector,
            } => {
                eprintln!("no pod in {namespace} has the gateway label {selector}");
                if serves_gateway_api
                    && choose_api("ingress gateway pods I name")? == ExposureApi::GatewayApi
                {
                    chosen_api(ExposureApi::GatewayApi, (options, answers));
                    asked = true;
                    continue;
                }
                let text = prompt_text(
                    &format!("Label of the ingress gateway pods in {namespace} (LABEL=VALUE)"),
                    None,
                    |text| values_exposure::parse_selector(text).map(|_| ()),
                )?;
                options.expose.gateway_selector =
                    values_exposure::parse_selector(&text).expect("validated as typed");
                answers.gateway_selector = text;
                asked = true;
            }
            Error::DataPath { problem, .. } => {
                eprintln!("{problem}");
                let name = prompt_text(
                    &format!(
                        "Secret in {} whose ca.crt is the CA that signed kms-api's certificate",
                        target.kms_namespace
                    ),
                    None,
                    |text| {
                        if text.is_empty() {
                            Err("give the Secret's name".to_owned())
                        } else {
                            Ok(())
                        }
                    },
                )?;
                options.expose.upstream_ca_secret = Some(name.clone());
                answers.upstream_ca_secret = Some(name);
                asked = true;
            }
            _ => {}
        }
    }
    Ok(asked)
}

/// Records the API chosen, for this run and the answers file.
fn chosen_api(api: ExposureApi, (options, answers): (&mut StepOptions, &mut Answers)) {
    options.expose.api = Some(api);
    answers.api = Some(api.flag_value().to_owned());
}

fn save_answers(answers: &Answers, context: &str, path: &std::path::Path) -> Result<()> {
    let mut saved = answers.clone();
    saved.context = Some(context.to_owned());
    saved.save(path)?;
    eprintln!("answers saved to {}", path.display());
    Ok(())
}

fn show_plan(
    run: Run<'_>,
    plans: &Plans,
    answers: &Answers,
    key: Option<&ApiKey>,
    inject_needed: bool,
    names: &Names,
) {
    let key_summary = key
        .zip(plans.apikey.as_ref())
        .map(|(key, plan)| (key.fingerprint(), plan.change.clone()));
    let previews: Vec<(String, Preview)> = plans
        .objects
        .iter()
        .map(|object| (object.desired.display_name(), object.preview.clone()))
        .collect();
    eprintln!("Plan for context {}:", run.cluster.context());
    // A sidecar found current after all (one injected outside the plugin
    // is left as it is) needs nothing.
    let injection = plans
        .injection
        .as_ref()
        .filter(|plan| inject_needed && !matches!(plan, injection::Plan::AlreadyInjected(_)))
        .map(|plan| (plan.refresh(), plan.changes()));
    // Which API the exposure planned for, as the plan says (an answers file
    // may leave the choice to the cluster).
    let through_gateway_api = plans
        .objects
        .iter()
        .any(|object| object.desired.place.resource.kind == owned::HTTP_ROUTE_OBJECT.kind);
    eprintln!(
        "{}",
        plan_text(
            answers,
            key_summary,
            injection,
            names,
            &previews,
            through_gateway_api
        )
    );
}

/// Asks once; anything but yes cancels the run.
fn confirm(question: &str) -> Result<()> {
    let go = answered(
        Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact_opt(),
    )?;
    if go { Ok(()) } else { Err(Error::Cancelled) }
}

/// Runs each step's `apply`, in the runbook's order. A step that fails ends
/// the run with what the steps before it did, where it stood, and what the
/// steps after it did not send.
async fn apply_all(
    run: Run<'_>,
    options: &StepOptions,
    plans: Plans,
    key: Option<&ApiKey>,
) -> Result<()> {
    let apikey = plans.apikey.filter(|_| key.is_some());
    let apikey_writes = apikey.as_ref().map_or_else(Vec::new, |plan| {
        let mut writes = Vec::new();
        if plan.change != SecretChange::Unchanged {
            writes.push(format!("store the key in secret/{}", options.apikey.secret));
        }
        if plan.restart {
            writes.push(format!(
                "restart deployment/{}",
                options.apikey.token_adapter
            ));
        }
        writes
    });
    let injection_writes: Vec<String> = plans
        .injection
        .iter()
        .map(|_| format!("inject deployment/{}", options.inject.deployment))
        .collect();
    let object_writes: Vec<String> = plans
        .objects
        .iter()
        .filter(|object| object.preview != Preview::Unchanged)
        .map(|object| object.desired.display_name())
        .collect();
    if let (Some(key), Some(plan)) = (key, apikey)
        && let Err(cause) = apikey_step::apply(run, &options.apikey, key, plan).await
    {
        let later = [injection_writes, object_writes].concat();
        let (mut progress, cause) = Unfinished::of(apikey_writes.join(", "), cause);
        if progress.rerun.is_some() {
            progress.rerun = Some(
                "run `kubectl kms-sts set-apikey --restart` with the same key, then the same \
                 command again to finish (a key already stored is unchanged for a re-run, which \
                 would restart nothing)"
                    .to_owned(),
            );
        }
        return Err(Unfinished::within(Vec::new(), (progress, cause), later));
    }
    if let Some(plan) = plans.injection
        && let Err(cause) = injection::apply(run, &options.inject, plan).await
    {
        let step = Unfinished::of(injection_writes.concat(), cause);
        return Err(Unfinished::within(apikey_writes, step, object_writes));
    }
    // The objects the plan showed, checked then; storing the key and
    // injecting do not change what they depend on.
    apply::write_planned(
        run.cluster,
        &plans.objects,
        ApplyOptions::default(),
        run.write,
        run.journal,
    )
    .await
    .map_err(|stopped| {
        Unfinished::within(
            [apikey_writes, injection_writes].concat(),
            stopped,
            Vec::new(),
        )
    })
}

/// Waits for `status` to pass, and prints its report.
async fn report_after(run: Run<'_>, names: &Names, timeout: std::time::Duration) -> Result<()> {
    let after = status::check_until_passing(run.cluster, run.served, names, timeout).await?;
    output::print(&after.render_text())?;
    if after.success {
        Ok(())
    } else {
        Err(Error::ChecksFailed {
            failed: after.summary.failed,
        })
    }
}

/// A step's read: its value, or, when the step's prerequisites are what
/// failed (a permission, something missing), `None` with the problems added
/// to `unmet`. Any other failure ends the run.
fn gathered<T>(read: Result<T>, unmet: &mut Vec<Error>) -> Result<Option<T>> {
    match read {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.is_unmet_prerequisite() => {
            unmet.extend(err.into_problems());
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// A step's plan, or `None` with its unmet prerequisites added to `unmet`.
fn planned<T>(plan: Result<T>, unmet: &mut Vec<Error>) -> Option<T> {
    plan.map_err(|err| unmet.extend(err.into_problems())).ok()
}

/// An exposure problem in the terms of the answers file that caused it.
fn for_answers_file(problem: Error, target: &Target) -> Error {
    match problem {
        Error::DataPath { problem, .. } => Error::DataPath {
            problem,
            hint: format!(
                "set upstreamCaSecret in the answers file to a Secret in {} whose \
                 ca.crt is the CA that signed kms-api's certificate",
                target.kms_namespace
            ),
        },
        Error::NoGatewayPods {
            namespace,
            selector,
        } => Error::InvalidAnswers {
            field: "gatewaySelector".into(),
            reason: format!(
                "no pod in {namespace} has the label {selector}; \
                 `kubectl get pods -n {namespace} --show-labels` lists them"
            ),
        },
        other => other,
    }
}

/// The plan shown before the one confirmation: each step, and for the
/// objects that expose and map-identity apply, each field that changes.
fn plan_text(
    answers: &Answers,
    key_plan: Option<(String, SecretChange)>,
    injection: Option<(Option<String>, Vec<FieldChange>)>,
    names: &Names,
    previews: &[(String, Preview)],
    through_gateway_api: bool,
) -> String {
    let (kms, istio) = (&names.kms_namespace, &names.istio_namespace);
    let mut lines = Vec::new();
    let secret = &names.secret;
    let store = |fingerprint: &str, was: &str| {
        format!(
            "  1. set-apikey: store key sha256:{fingerprint} in secret {istio}/{secret} ({was}), restart deployment {istio}/{}",
            names.token_adapter
        )
    };
    lines.push(match key_plan {
        Some((fingerprint, SecretChange::Unchanged)) => format!(
            "  1. set-apikey: key sha256:{fingerprint} is already stored in secret {istio}/{secret}"
        ),
        Some((
            fingerprint,
            SecretChange::Update {
                previous: Some(previous),
            },
        )) => store(&fingerprint, &format!("replacing sha256:{previous}")),
        Some((fingerprint, _)) => store(&fingerprint, "was empty"),
        None => "  1. set-apikey: keep the stored key".to_owned(),
    });
    match injection {
        Some((refresh, changes)) => {
            lines.push(match refresh {
                Some(change) => format!(
                    "  2. inject: refresh the istio-proxy sidecar of deployment {kms}/{} in place ({change}; rolling update)",
                    names.deployment
                ),
                None => format!(
                    "  2. inject: add the istio-proxy sidecar to deployment {kms}/{} (rolling update, original backed up)",
                    names.deployment
                ),
            });
            lines.extend(changes.iter().map(|change| format!("       {change}")));
        }
        None => lines.push("  2. inject: already done".to_owned()),
    }
    let routing = if through_gateway_api {
        format!(
            "gateway {istio}/{} (Gateway API), httproute and backendtlspolicy in {kms}",
            owned::KMS_GATEWAY
        )
    } else {
        format!("gateway, virtualservice and destinationrule in {kms}")
    };
    lines.push(format!(
        "  3. expose: certificate {istio}/{} for {} issued by {} {}; {routing}",
        owned::CERTIFICATE,
        answers.hosts.join(", "),
        answers.issuer_kind,
        answers.issuer
    ));
    lines.push(format!(
        "  4. map-identity: policy {istio}/{} mapping {} to {}",
        names.policy,
        answers.source_crn,
        answers.target_crns.join(", ")
    ));
    lines.push("  Objects:".to_owned());
    for (object, preview) in previews {
        match preview {
            Preview::Create => lines.push(format!("     {object}: create")),
            Preview::Unchanged => lines.push(format!("     {object}: unchanged")),
            Preview::Update(changes) => {
                lines.push(format!("     {object}: update"));
                lines.extend(changes.iter().map(|change| format!("       {change}")));
            }
        }
    }
    lines.join("\n")
}

/// Lets the user pick among the kubeconfig's contexts.
fn choose_context(target: &mut Target) -> Result<()> {
    let (contexts, selected) = cluster::contexts(target)?;
    if contexts.len() < 2 {
        return Ok(());
    }
    let current = selected
        .as_ref()
        .and_then(|name| contexts.iter().position(|c| c == name))
        .unwrap_or(0);
    let index = answered(
        Select::new()
            .with_prompt("Kubernetes context")
            .items(&contexts)
            .default(current)
            .interact_opt(),
    )?;
    target.context = Some(contexts[index].clone());
    Ok(())
}

/// What an earlier setup left in the cluster, offered as defaults.
#[derive(Debug, Default)]
struct Existing {
    hosts: Option<String>,
    issuer: Option<String>,
    source_crn: Option<String>,
    target_crn: Option<String>,
}

/// Reads the Certificate and the policy an earlier run created, if any.
async fn existing_setup(cluster: &Cluster, served: &ServedApis, names: &Names) -> Result<Existing> {
    let at = Where {
        policy: Some(&names.policy),
        ..Where::namespaces(&names.kms_namespace, &names.istio_namespace)
    };
    let (certificate, policy) = tokio::try_join!(
        read_owned::<Certificate>(cluster, served, &at, &owned::CERTIFICATE_OBJECT),
        read_owned::<IdentityMappingPolicy>(cluster, served, &at, &owned::POLICY),
    )?;
    let mut existing = Existing::default();
    if let Some(cert) = certificate {
        let spec = cert.spec;
        let hosts: Vec<&String> = spec.ip_addresses.iter().chain(&spec.dns_names).collect();
        existing.hosts = (!hosts.is_empty()).then(|| {
            hosts
                .iter()
                .map(|host| host.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        });
        existing.issuer = Some(spec.issuer_ref.name).filter(|name| !name.is_empty());
    }
    if let Some(policy) = policy {
        let spec = policy.spec;
        existing.source_crn = Some(spec.identity_mapping.source_identity).filter(|s| !s.is_empty());
        existing.target_crn = spec.target_resources.into_iter().next();
    }
    Ok(existing)
}

fn category_passes(report: &Report, category: &str) -> bool {
    report
        .categories
        .iter()
        .filter(|c| c.name == category)
        .flat_map(|c| &c.checks)
        .all(|c| c.result == Outcome::Pass)
}

/// Asks for what is missing, validating as the user types; what an earlier
/// run set up correctly is kept (and said so), the rest offered as defaults.
fn ask(
    target: &Target,
    names: &Names,
    key_missing: bool,
    report: &Report,
    existing: &Existing,
) -> Result<(Answers, Option<ApiKey>)> {
    let key = if key_missing { Some(ask_key()?) } else { None };
    let (hosts, issuer) = ask_exposure(category_passes(report, "exposure"), existing)?;
    let (source_crn, target_crn) = ask_identity(category_passes(report, "identity"), existing)?;
    let answers = Answers {
        context: target.context.clone(),
        kms_namespace: target.kms_namespace.clone(),
        istio_namespace: target.istio_namespace.clone(),
        hosts: hosts.split(',').map(|h| h.trim().to_owned()).collect(),
        issuer,
        issuer_kind: defaults::ISSUER_KIND.into(),
        common_name: defaults::COMMON_NAME.into(),
        source_crn,
        target_crns: vec![target_crn],
        gateway_selector: defaults::GATEWAY_SELECTOR.into(),
        api: None,
        upstream_ca_secret: None,
        deployment: names.deployment.clone(),
        token_adapter: names.token_adapter.clone(),
        secret: names.secret.clone(),
        secret_key: names.secret_key.clone(),
        policy: names.policy.clone(),
        revision: names.revision.clone(),
    };
    answers.validate()?;
    Ok((answers, key))
}

/// The API key, typed without echo and checked as it is typed.
fn ask_key() -> Result<ApiKey> {
    let text = Password::new()
        .with_prompt("STS API key")
        .validate_with(|text: &String| {
            ApiKey::new(text.as_bytes().to_vec())
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .interact()
        .map_err(|_| Error::Cancelled)?;
    ApiKey::new(text.into_bytes())
}

/// The gateway's hosts (comma-separated, as typed) and the issuer: kept
/// when the exposure already passes, else asked.
fn ask_exposure(exposed: bool, existing: &Existing) -> Result<(String, String)> {
    if let (true, Some(hosts), Some(issuer)) = (exposed, &existing.hosts, &existing.issuer) {
        eprintln!("keeping the exposure: hosts {hosts}, issuer {issuer}");
        return Ok((hosts.clone(), issuer.clone()));
    }
    let hosts = prompt_text(
        "Gateway addresses (IPs or DNS names, comma-separated)",
        existing.hosts.as_deref(),
        |text| {
            text.split(',')
                .map(str::trim)
                .try_for_each(|host| host::parse_host(host).map(|_| ()))
        },
    )?;
    let issuer = prompt_text(
        "cert-manager ClusterIssuer",
        Some(existing.issuer.as_deref().unwrap_or(defaults::ISSUER)),
        |_| Ok(()),
    )?;
    Ok((hosts, issuer))
}

/// The source and target CRNs: kept when the mapping already passes, else
/// asked.
fn ask_identity(mapped: bool, existing: &Existing) -> Result<(String, String)> {
    if let (true, Some(source), Some(target)) = (mapped, &existing.source_crn, &existing.target_crn)
    {
        eprintln!("keeping the identity mapping: {source} to {target}");
        return Ok((source.clone(), target.clone()));
    }
    let source = prompt_text("Source CRN (STS)", existing.source_crn.as_deref(), |text| {
        crn::parse(text).map(|_| ()).map_err(|e| e.to_string())
    })?;
    let target = prompt_text("Target CRN (KMS)", existing.target_crn.as_deref(), |text| {
        crn::parse_kms_target(text)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    Ok((source, target))
}

fn prompt_text(
    prompt: &str,
    default: Option<&str>,
    check: impl Fn(&str) -> std::result::Result<(), String>,
) -> Result<String> {
    let mut input = Input::<String>::new().with_prompt(prompt);
    if let Some(default) = default {
        input = input.default(default.to_owned());
    }
    input
        .validate_with(|text: &String| check(text.trim()))
        .interact_text()
        .map(|text| text.trim().to_owned())
        .map_err(|_| {
            let _ = console::Term::stderr().show_cursor();
            Error::Cancelled
        })
}
