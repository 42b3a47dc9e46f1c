//! Progress while the plugin waits on the cluster: a spinner on a terminal,
//! plain lines on stderr otherwise (one per change, so logs stay readable).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    spinner: Option<ProgressBar>,
    last: String,
}

impl Progress {
    pub fn start(message: &str) -> Progress {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("static template is valid"),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        let mut progress = Progress {
            spinner,
            last: String::new(),
        };
        progress.update(message);
        progress
    }

    pub fn update(&mut self, message: &str) {
        if message == self.last {
            return;
        }
        message.clone_into(&mut self.last);
        match &self.spinner {
            Some(bar) => bar.set_message(message.to_owned()),
            None => eprintln!("{message}"),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}
