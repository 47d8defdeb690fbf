//! The CLI's error: a one-line message and an exit code a script can tell apart.
//!
//! Exit codes: 1 other failure, 2 invalid input (also clap's usage errors), 3 not found,
//! 5 not allowed,
//! 4 storage (the store cannot be opened, read or written, or `check` found damage).

use std::{fmt, process::ExitCode};

use nabij_core::{Error, error::DocError};

/// What kind of failure, and so which exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// Anything else.
    Failure,
    /// The input was refused: bad id, bad date, empty text, unknown value.
    Invalid,
    /// No such case, note, learning point, meeting, network or agreement.
    NotFound,
    /// The store could not be opened, read or written.
    Storage,
    /// Not allowed: only an admin of a network changes who is in it.
    NotAllowed,
}

impl Code {
    pub(crate) fn exit_code(self) -> ExitCode {
        ExitCode::from(self.number())
    }

    pub(crate) fn number(self) -> u8 {
        match self {
            Code::Failure => 1,
            Code::Invalid => 2,
            Code::NotFound => 3,
            Code::Storage => 4,
            Code::NotAllowed => 5,
        }
    }

    /// The stable name in `--json` error output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Code::Failure => "failure",
            Code::Invalid => "invalid_input",
            Code::NotFound => "not_found",
            Code::Storage => "storage",
            Code::NotAllowed => "not_allowed",
        }
    }
}

/// A failed command: why, in one line, and its exit code.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) code: Code,
    pub(crate) message: String,
}

impl CliError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self { code: Code::Invalid, message: message.into() }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self { code: Code::NotFound, message: message.into() }
    }

    pub(crate) fn storage(message: impl Into<String>) -> Self {
        Self { code: Code::Storage, message: message.into() }
    }

    pub(crate) fn failure(message: impl Into<String>) -> Self {
        Self { code: Code::Failure, message: message.into() }
    }

    /// The same error with `context: ` before its message.
    pub(crate) fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// One line: newlines in a wrapped error (SQLite, Automerge) become spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::Invalid(_) => Code::Invalid,
            Error::NotFound { .. } => Code::NotFound,
            // Asking for a case by the id of a meeting: there is no such case.
            Error::Document(DocError::WrongKind { .. }) => Code::NotFound,
            Error::Document(DocError::TextRange { .. }) => Code::Invalid,
            Error::Merge(_) => Code::Invalid,
            Error::Open(_) | Error::Store(_) | Error::StoredDocument { .. } => Code::Storage,
            Error::Document(_) => Code::Storage,
            Error::NotAllowed(_) => Code::NotAllowed,
            _ => Code::Failure,
        };
        Self { code, message: one_line(&e.to_string()) }
    }
}

impl From<nabij_core::ParseIdError> for CliError {
    fn from(e: nabij_core::ParseIdError) -> Self {
        Self::invalid(one_line(&e.to_string()))
    }
}

impl From<nabij_core::model::ValidationError> for CliError {
    fn from(e: nabij_core::model::ValidationError) -> Self {
        Self::invalid(one_line(&e.to_string()))
    }
}

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;
