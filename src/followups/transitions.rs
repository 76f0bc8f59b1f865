//! The task status machine: `open → in_progress → resolved | dismissed`, closing an open
//! task at once (`open → resolved | dismissed`, one click), and reopening a closed task
//! (`resolved | dismissed → open`). The system may also resolve an open task when the
//! customer raises their score.

pub const STATUSES: [&str; 4] = ["open", "in_progress", "resolved", "dismissed"];

/// Ok when `from → to` is allowed (or no change), else the reason.
pub fn check(from: &str, to: &str) -> Result<(), String> {
    if !STATUSES.contains(&to) {
        return Err(format!(
            "unknown status {to:?}; use one of {}",
            STATUSES.join(", ")
        ));
    }
    match (from, to) {
        (a, b) if a == b => Ok(()),
        ("open", "in_progress") => Ok(()),
        ("open" | "in_progress", "resolved" | "dismissed") => Ok(()),
        ("resolved" | "dismissed", "open") => Ok(()),
        ("in_progress", "open") => {
            Err("a task in progress cannot go back to open; resolve or dismiss it".into())
        }
        (_, "in_progress") => Err(format!(
            "a {from} task must be reopened (status open) before work starts again"
        )),
        _ => Err(format!("a {from} task cannot become {to}")),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn the_allowed_paths() {
        for (a, b) in [
            ("open", "in_progress"),
            ("in_progress", "resolved"),
            ("in_progress", "dismissed"),
            ("open", "resolved"),
            ("open", "dismissed"),
            ("resolved", "open"),
            ("dismissed", "open"),
            ("open", "open"),
        ] {
            assert!(check(a, b).is_ok(), "{a} → {b}");
        }
    }

    #[test]
    fn everything_else_says_why() {
        for (a, b) in [
            ("in_progress", "open"),
            ("resolved", "in_progress"),
            ("resolved", "dismissed"),
            ("open", "done"),
        ] {
            let why = check(a, b).unwrap_err();
            assert!(!why.is_empty(), "{a} → {b}");
        }
    }
}
