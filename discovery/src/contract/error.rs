//! The one error type of the contract: which setting, which value, and why it was refused.

use std::fmt;

/// Longest value quoted in full in an error message; longer ones are cut (a multi-kilobyte
/// `VIRTUAL_HOST_MULTIPORTS` would drown the log line).
const MAX_QUOTED_CHARS: usize = 120;

/// A container setting that dockhand refuses.
///
/// The caller logs it once, naming the container, and leaves the container out of the table:
/// the rest of the table is unaffected, unlike nginx-proxy where one bad value can fail the
/// whole nginx reload.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ContractError {
    /// The setting, e.g. `VIRTUAL_PORT`, a label name, or a position inside
    /// `VIRTUAL_HOST_MULTIPORTS` such as `VIRTUAL_HOST_MULTIPORTS[a.example][/api/].port`.
    pub variable: String,
    /// The offending value, trimmed (for a list such as `VIRTUAL_HOST`, the offending entry).
    pub value: String,
    /// Why it was refused, and what would be accepted.
    pub reason: String,
}

impl ContractError {
    /// Builds an error for `variable` holding `value`.
    pub fn new(
        variable: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            variable: variable.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.value.chars();
        let head: String = chars.by_ref().take(MAX_QUOTED_CHARS).collect();
        let cut = if chars.next().is_some() { "…" } else { "" };
        write!(
            f,
            "invalid {} {:?}{cut}: {}",
            self.variable, head, self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_variable_value_and_reason() {
        let e = ContractError::new("VIRTUAL_PORT", "http", "not a number");
        assert_eq!(
            e.to_string(),
            r#"invalid VIRTUAL_PORT "http": not a number"#
        );
    }

    #[test]
    fn display_cuts_long_values() {
        let e = ContractError::new("X", "é".repeat(500), "too long");
        let shown = e.to_string();
        assert!(shown.contains(&format!("{:?}…", "é".repeat(MAX_QUOTED_CHARS))));
        assert!(shown.ends_with(": too long"));
    }
}
