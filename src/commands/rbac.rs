//! `rbac`: the Roles, ClusterRole and bindings that grant a user, group or
//! service account exactly what a command needs in the run's namespaces, as
//! YAML for `kubectl apply -f -`. Built from the same permission lists each
//! command's preflight checks, so what it grants and what the commands ask
//! for cannot drift apart. Reading Istio's `default` tag and port-forwards
//! to the gateway proxies are granted only on request: the commands do
//! without them.

use crate::cli::RbacArgs;
use crate::cluster::discovery;
use crate::cluster::permissions::{self, Scope, Subject};
use crate::cluster::{Cluster, Target};
use crate::error::{Error, Result};
use crate::terminal::output;

pub async fn run(target: &Target, args: &RbacArgs) -> Result<()> {
    if args.read_default_tag && !args.command.chooses_a_revision() {
        return Err(Error::InvalidFlag {
            flag: "--read-default-tag",
            reason: format!(
                "{} chooses no Istio revision; the default tag is read by --for inject, status \
                 or all",
                args.command.name()
            ),
        });
    }
    if args.read_gateway_config && !args.command.checks_gateway_config() {
        return Err(Error::InvalidFlag {
            flag: "--read-gateway-config",
            reason: format!(
                "{} reads no gateway configuration; status does (--for status or all)",
                args.command.name()
            ),
        });
    }
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
    let cluster = Cluster::connect(target).await?;
    let served = discovery::discover(&cluster).await?;
    let scope = Scope::of(target, &served);
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("kubectl-kms-sts-{}", args.command.name()));
    let mut needs = args.command.needs(&scope);
    if args.read_default_tag {
        needs.extend(permissions::for_default_tag());
    }
    if args.read_gateway_config {
        needs.extend(permissions::for_gateway_config(&target.istio_namespace));
    }
    let objects = permissions::rbac_objects(&needs, &name, &subject);
    let documents: Vec<String> = objects
        .iter()
        .map(|object| output::render(object, output::Format::Yaml))
        .collect();
    output::print(&documents.join("---\n"))
}
