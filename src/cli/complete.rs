//! Shell completion through kubectl. kubectl (1.26+) completes a plugin's
//! arguments by running `kubectl_complete-<plugin>` with the words typed so
//! far; the README's helper of that name calls `kubectl kms-sts __complete
//! WORDS...` (`kubectl kms-sts completion kubectl` prints it), answered here
//! in kubectl's own protocol: one candidate per line
//! (a tab before its description), then `:4` (complete no file names).

use clap::CommandFactory;

use crate::cli::Cli;
use crate::cluster::{self, Target};

/// The argument that asks for completions instead of running a command.
pub const REQUEST: &str = "__complete";
/// Cobra's "no file completion" directive.
const NO_FILE_COMPLETION: &str = ":4";

/// Completion candidates for `words`, whose last element is the word being typed.
pub fn candidates(words: &[String]) -> Vec<String> {
    let mut root = Cli::command();
    root.build();
    let (typed, before) = match words.split_last() {
        Some((last, rest)) => (last.as_str(), rest),
        None => ("", &[][..]),
    };
    let mut command = &root;
    let mut expects_value: Option<clap::Arg> = None;
    let mut skip = false;
    // A kubeconfig typed earlier on the line is where contexts come from.
    let mut cluster_args = Target::default();
    let mut previous = "";
    for word in before {
        if skip {
            skip = false;
            if previous == "--kubeconfig" {
                cluster_args.kubeconfig = Some(word.into());
            }
            previous = word;
            continue;
        }
        previous = word;
        if let Some(name) = word.strip_prefix("--") {
            if let Some(path) = name.strip_prefix("kubeconfig=") {
                cluster_args.kubeconfig = Some(path.into());
            } else if !name.contains('=') {
                let arg = find_long(&root, command, name);
                skip = arg.as_ref().is_some_and(takes_value);
            }
        } else if word.starts_with('-') {
            skip = word.len() == 2
                && find_short(command, word.chars().nth(1).unwrap_or_default())
                    .is_some_and(|a| takes_value(&a));
        } else if let Some(sub) = command.find_subcommand(word) {
            command = sub;
        }
    }
    if let Some(last) = before.last()
        && skip
    {
        expects_value = last
            .strip_prefix("--")
            .and_then(|name| find_long(&root, command, name))
            .or_else(|| last.chars().nth(1).and_then(|c| find_short(command, c)));
    }

    let mut out: Vec<String> = Vec::new();
    if let Some(arg) = expects_value {
        if arg.get_id() == "context" {
            if let Ok((contexts, _)) = cluster::contexts(&cluster_args) {
                out.extend(contexts);
            }
        } else {
            out.extend(
                arg.get_possible_values()
                    .iter()
                    .map(|v| v.get_name().to_owned()),
            );
        }
    } else if typed.starts_with('-') {
        let args = command
            .get_arguments()
            .chain(root.get_arguments().filter(|a| a.is_global_set()));
        for arg in args {
            if let Some(long) = arg.get_long() {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                out.push(format!("--{long}\t{help}"));
            }
        }
    } else if command.get_name() == root.get_name() {
        for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            out.push(format!("{}\t{about}", sub.get_name()));
        }
    }
    out.retain(|candidate| candidate.starts_with(typed));
    out.sort();
    out.dedup();
    out
}

/// The full answer, protocol directive included.
pub fn answer(words: &[String]) -> String {
    let mut text = String::new();
    for candidate in candidates(words) {
        text += &candidate;
        text.push('\n');
    }
    text + NO_FILE_COMPLETION + "\n"
}

/// Whether the next word is this flag's value (`--dry-run` takes its value
/// only as `--dry-run=MODE`).
fn takes_value(arg: &clap::Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.takes_values()) && !arg.is_require_equals_set()
}

fn find_long(root: &clap::Command, command: &clap::Command, name: &str) -> Option<clap::Arg> {
    command
        .get_arguments()
        .chain(root.get_arguments())
        .find(|a| a.get_long() == Some(name))
        .cloned()
}

fn find_short(command: &clap::Command, short: char) -> Option<clap::Arg> {
    command
        .get_arguments()
        .find(|a| a.get_short() == Some(short))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(words: &[&str]) -> Vec<String> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        candidates(&words)
            .into_iter()
            .map(|c| c.split('\t').next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn subcommands_complete_by_prefix() {
        assert_eq!(complete(&["se"]), vec!["set-apikey"]);
        let all = complete(&[""]);
        for name in [
            "expose",
            "inject",
            "map-identity",
            "set-apikey",
            "status",
            "version",
            "wizard",
        ] {
            assert!(all.contains(&name.to_owned()), "{all:?}");
        }
    }

    #[test]
    fn flags_of_the_subcommand_and_globals() {
        let flags = complete(&["expose", "--"]);
        assert!(flags.contains(&"--host".to_owned()), "{flags:?}");
        assert!(flags.contains(&"--kubeconfig".to_owned()), "{flags:?}");
        assert!(!flags.contains(&"--from-stdin".to_owned()));
        assert_eq!(complete(&["set-apikey", "--from-s"]), vec!["--from-stdin"]);
    }

    #[test]
    fn flag_values_complete_from_possible_values() {
        assert_eq!(complete(&["status", "-o", ""]), vec!["json", "yaml"]);
        assert_eq!(
            complete(&["expose", "--dry-run", "s"]),
            Vec::<String>::new()
        );
        assert_eq!(complete(&["status", "--output", "y"]), vec!["yaml"]);
    }

    #[test]
    fn contexts_come_from_a_kubeconfig_typed_earlier() {
        let dir = std::env::temp_dir().join(format!("kms-sts-completion-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: red\n\
             clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
             users: [{name: u, user: {token: t}}]\n\
             contexts: [{name: red, context: {cluster: c, user: u}}, \
                        {name: blue, context: {cluster: c, user: u}}]\n",
        )
        .unwrap();
        let path = path.to_str().unwrap();
        assert_eq!(
            complete(&["--kubeconfig", path, "status", "--context", ""]),
            vec!["blue", "red"]
        );
        let equals = format!("--kubeconfig={path}");
        assert_eq!(
            complete(&["status", &equals, "--context", "r"]),
            vec!["red"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn answer_ends_with_the_no_file_directive() {
        assert!(
            answer(&["ver".to_owned()]).ends_with(
                "version\tPrint the plugin's version and the API server's version\n:4\n"
            )
        );
    }
}
