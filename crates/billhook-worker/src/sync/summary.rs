//! What a sync did, per type: the table `billhook-worker sync` prints at the end.

use std::fmt;

use super::types::ObjectType;

/// A finished sync run.
#[derive(Debug)]
pub struct Summary {
    pub run: i64,
    /// The run continued one that an earlier sync left unfinished.
    pub resumed: bool,
    pub types: Vec<TypeSummary>,
}

/// One type of a run. Counts are the run's (a resumed run's earlier pages included); seconds
/// are this process's.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeSummary {
    pub object_type: ObjectType,
    pub fetched: i64,
    pub written: i64,
    pub kept: i64,
    pub seconds: f64,
    /// Finished by an earlier process of a resumed run: not listed again.
    pub done_before: bool,
}

impl Summary {
    /// The figures of `object_type`, if the run had it.
    pub fn of(&self, object_type: ObjectType) -> Option<&TypeSummary> {
        self.types.iter().find(|t| t.object_type == object_type)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resumed = if self.resumed { " (resumed)" } else { "" };
        writeln!(f, "sync run {}{resumed} succeeded", self.run)?;
        writeln!(
            f,
            "{:<18} {:>9} {:>9} {:>9} {:>9}",
            "type", "fetched", "written", "kept", "seconds"
        )?;
        for t in &self.types {
            let seconds = if t.done_before {
                "earlier".to_owned()
            } else {
                format!("{:.1}", t.seconds)
            };
            writeln!(
                f,
                "{:<18} {:>9} {:>9} {:>9} {:>9}",
                t.object_type.name(),
                t.fetched,
                t.written,
                t.kept,
                seconds
            )?;
        }
        Ok(())
    }
}
