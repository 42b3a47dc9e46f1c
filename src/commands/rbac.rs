//! `rbac`: the Roles, ClusterRole and bindings that grant a user, group or
//! service account exactly what a command needs in the run's namespaces, as
//! YAML for `kubectl apply -f -`. Built from the same permission lists each
//! command's preflight checks, so what it grants and what the commands ask
//! for cannot drift apart.

use crate::cli::ClusterArgs;
use crate::cluster::Cluster;
use crate::discovery;
use crate::error::{Error, Result};
use crate::output;
use crate::permissions::{self, Command, Scope, Subject};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["to_user", "to_group", "to_service_account"])))]
pub struct RbacArgs {
    /// The command to grant what it needs (`all`: the whole chain).
    #[arg(long = "for", value_name = "COMMAND")]
    pub command: Command,

    /// Grant to this user (`--user` keeps kubectl's meaning: the
    /// kubeconfig user to connect as).
    #[arg(long, value_name = "NAME")]
    pub to_user: Option<String>,

    /// Grant to this group.
    #[arg(long, value_name = "NAME")]
    pub to_group: Option<String>,

    /// Grant to this service account.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_service_account)]
    pub to_service_account: Option<(String, String)>,

    /// Name of the Roles and bindings (default: kubectl-kms-sts-COMMAND).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

fn parse_service_account(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ => Err(format!("\"{text}\" is not NAMESPACE/NAME")),
    }
}

pub async fn run(cluster_args: &ClusterArgs, args: &RbacArgs) -> Result<()> {
    let subject = match (&args.to_user, &args.to_group, &args.to_service_account) {
        (Some(user), _, _) => Subject::User(user.clone()),
        (_, Some(group), _) => Subject::Group(group.clone()),
        (_, _, Some((namespace, name))) => Subject::ServiceAccount {
            namespace: namespace.clone(),
            name: name.clone(),
        },
        _ => {
            return Err(Error::InvalidFlag {
                flag: "--to-user",
                reason: "name who is granted: --to-user, --to-group or --to-service-account".into(),
            });
        }
    };
    // The cert-manager group the cluster serves decides which Certificates
    // the grants name.
    let cluster = Cluster::connect(cluster_args).await?;
    let served = discovery::discover(&cluster).await?;
    let scope = Scope {
        kms: &cluster_args.kms_namespace,
        istio: &cluster_args.istio_namespace,
        cert_manager: served.cert_manager(),
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("kubectl-kms-sts-{}", args.command.name()));
    let objects = permissions::rbac_objects(&args.command.needs(&scope), &name, &subject);
    let documents: Vec<String> = objects
        .iter()
        .map(|object| output::render(object, output::Format::Yaml))
        .collect();
    output::print(&documents.join("---\n"))
}
