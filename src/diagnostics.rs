//! Load-time diagnostics for a mapping file, collected in one place: the
//! field compiler (`mapping::compile`) and the `[[step]]` pipeline compiler
//! (`upstream::pipeline`) read the same file and report through the same
//! [`Diagnostics`], so both point at `file:line:column` the same way and
//! `authbridge check` can merge their findings in file order.
//!
//! A diagnostic never carries a value from a CRM payload: messages name
//! fields and types only, because the values are personal data.

use std::fmt;
use std::ops::Range;

/// One problem found while loading a mapping file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The mapping file, as given to the loader.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The target field the problem belongs to (`client.surname`), or empty.
    pub field: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// A mapping file that cannot be used; holds every problem found, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct LoadError {
    /// The problems.
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadError {
    /// The problems of several loads of one file, in file order (at one
    /// position, in the order given).
    pub fn merged(errors: impl IntoIterator<Item = LoadError>) -> Self {
        let mut diagnostics: Vec<Diagnostic> =
            errors.into_iter().flat_map(|e| e.diagnostics).collect();
        diagnostics.sort_by_key(|d| (d.line, d.column));
        Self { diagnostics }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The collector: the problems found in one file's text, each placed by the
/// byte span it was found at. Compilers keep going after a problem so one
/// run shows all of them: an integrator fixes a file in one pass.
#[derive(Debug)]
pub struct Diagnostics<'a> {
    file: &'a str,
    text: &'a str,
    found: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    /// An empty collector for `text`, the content of `file`.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Self {
            file,
            text,
            found: Vec::new(),
        }
    }

    /// Records a problem of `field` found at `span` of the text.
    pub fn report(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        let (line, column) = line_col(self.text, span.start);
        self.found.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// How many problems are recorded: a mark to compare against, or to
    /// [`truncate`](Self::truncate) back to.
    pub fn count(&self) -> usize {
        self.found.len()
    }

    /// Drops the problems recorded after mark `count` (a tentative reading
    /// that was abandoned for another).
    pub fn truncate(&mut self, count: usize) {
        self.found.truncate(count);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The recorded problems, in the order found (for warnings, which fail
    /// nothing).
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.found
    }

    /// `Ok` when nothing was recorded, else every problem in file order.
    pub fn finish(self) -> Result<(), LoadError> {
        if self.found.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }

    /// Every recorded problem, in file order.
    pub fn into_error(self) -> LoadError {
        LoadError::merged([LoadError {
            diagnostics: self.found,
        }])
    }
}

/// Byte offset to 1-based (line, column) in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before, |nl| &before[nl + 1..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 9), (2, 4));
    }

    #[test]
    fn problems_come_out_in_file_order() {
        let text = "a = 1\nbb = 2\n";
        let mut d = Diagnostics::new("m.toml", text);
        d.report(9..10, "bb", "second");
        d.report(0..1, "", "first");
        assert_eq!(
            d.finish().unwrap_err().to_string(),
            "m.toml:1:1: first\nm.toml:2:4: bb: second"
        );
    }
}
