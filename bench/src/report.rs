//! The report: one row per figure, printed as it is measured and again as
//! a Markdown table at the end.

use std::fmt::Write;

/// Whether a figure meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// An absolute target on a `--quick` run: the figure is shown, but
    /// quick sizes say nothing about the full-size target.
    NotChecked,
}

impl Verdict {
    pub fn of(met: bool) -> Self {
        if met {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }

    /// An absolute target (a rate, a latency, a duration): checked on
    /// full runs, shown but not checked on quick ones.
    pub fn absolute(quick: bool, met: bool) -> Self {
        if quick {
            Verdict::NotChecked
        } else {
            Verdict::of(met)
        }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Met => "MET",
            Verdict::Missed => "MISSED",
            Verdict::NotChecked => "not checked (quick)",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub what: String,
    pub figure: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
    pub verdict: Verdict,
}

/// Every row so far, plus free-form notes.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Report {
    /// Records a row and prints it at once.
    #[allow(clippy::too_many_arguments)]
    pub fn row(
        &mut self,
        id: &str,
        what: &str,
        figure: String,
        baseline: String,
        ratio: String,
        target: &str,
        verdict: Verdict,
    ) {
        let row = Row {
            id: id.into(),
            what: what.into(),
            figure,
            baseline,
            ratio,
            target: target.into(),
            verdict,
        };
        println!(
            "[{}] {}: {} | baseline {} | ratio {} | target {} | {}",
            row.id,
            row.what,
            row.figure,
            row.baseline,
            row.ratio,
            row.target,
            row.verdict.label()
        );
        self.rows.push(row);
    }

    /// Records a note and prints it at once.
    pub fn note(&mut self, text: String) {
        println!("  note: {text}");
        self.notes.push(text);
    }

    /// The Markdown table and notes.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("| # | what | figure | baseline | ratio | target | verdict |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.id,
                r.what,
                r.figure,
                r.baseline,
                r.ratio,
                r.target,
                r.verdict.label()
            );
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                let _ = writeln!(out, "* {n}");
            }
        }
        out
    }
}

/// `12 345/s`.
pub fn per_sec(n: f64) -> String {
    format!("{}/s", thousands(n.round() as u64))
}

/// `12 345`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// `0.42×`.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "n/a".into()
    }
}

/// Milliseconds with two decimals.
pub fn ms(micros: u64) -> String {
    format!("{:.2} ms", micros as f64 / 1000.0)
}

/// `123.4 MiB`.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1 000");
        assert_eq!(thousands(1_000_198), "1 000 198");
        assert_eq!(per_sec(17_018.4), "17 018/s");
        assert_eq!(ratio(1.0, 0.0), "n/a");
        assert_eq!(ratio(3.0, 2.0), "1.50×");
    }

    #[test]
    fn quick_runs_check_ratios_but_not_absolutes() {
        assert_eq!(Verdict::absolute(true, false), Verdict::NotChecked);
        assert_eq!(Verdict::absolute(true, true), Verdict::NotChecked);
        assert_eq!(Verdict::absolute(false, true), Verdict::Met);
        assert_eq!(Verdict::absolute(false, false), Verdict::Missed);
        let mut r = Report::default();
        r.row(
            "B9",
            "x",
            "1".into(),
            "-".into(),
            "-".into(),
            "≥ 2",
            Verdict::absolute(true, false),
        );
        assert!(r.markdown().contains("| ≥ 2 | not checked (quick) |"));
    }

    #[test]
    fn the_table_has_one_line_per_row() {
        let mut r = Report::default();
        r.row(
            "B9",
            "x",
            "1".into(),
            "2".into(),
            "0.50×".into(),
            "≥ 1×",
            Verdict::of(false),
        );
        let md = r.markdown();
        assert!(md.contains("| B9 | x | 1 | 2 | 0.50× | ≥ 1× | MISSED |"));
        assert_eq!(md.lines().count(), 3);
    }
}
