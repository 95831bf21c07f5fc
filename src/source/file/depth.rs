//! A linear pre-check of YAML flow-collection nesting (`[` and `{`), run before a document
//! reaches the YAML parser.
//!
//! Why (issue 9, item 8): the YAML scanner under `serde_yaml` (libyaml) re-examines one
//! "possible simple key" per open flow level for every token it reads, so a document of `n`
//! nested brackets costs O(n²) to scan, and `serde_yaml` only applies its recursion limit once
//! the whole document has been scanned: 100,000 brackets took two minutes to be rejected, and
//! the file source served nothing else meanwhile. This check walks the text once and stops at
//! the first bracket past [`MAX_FLOW_DEPTH`].
//!
//! It follows YAML's lexical rules closely enough to tell flow indicators from scalar text:
//! quoted scalars, comments, block scalars (`|`, `>`) and plain scalars (where `[` is just a
//! character) are skipped. Where it could be unsure it errs towards counting *less*: a
//! document it lets through is still checked by the parser (correct, only slower), while one it
//! rejects must really be too deep. The parser rejects anything nested deeper than 128 levels
//! (`serde_yaml`'s recursion limit, which counts block levels too), so a flow depth of
//! [`MAX_FLOW_DEPTH`] can never be valid.

/// One more flow level than `serde_yaml` accepts in any document.
pub(super) const MAX_FLOW_DEPTH: usize = 129;

/// Where a document first nests deeper than [`MAX_FLOW_DEPTH`]: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooDeep {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The parser's own words for the same rejection, so messages do not depend on which
        // check caught it.
        write!(
            f,
            "recursion limit exceeded at line {} column {}",
            self.line, self.column
        )
    }
}

/// Scans `text` once (every byte is looked at a bounded number of times) and reports the first
/// bracket that opens flow level [`MAX_FLOW_DEPTH`]. `first_line` (0-based) is added to the
/// reported line, for a document cut out of a larger file.
pub(super) fn check(text: &str, first_line: usize) -> Result<(), TooDeep> {
    Scanner::new(text.as_bytes())
        .run()
        .map_err(|(line, column)| TooDeep {
            line: line + first_line + 1,
            column: column + 1,
        })
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// 0-based line of `pos`, and the offset where that line starts.
    line: usize,
    line_start: usize,
    /// Open flow collections.
    depth: usize,
    /// Whether the next non-blank byte starts a node (so `[`, `{`, quotes and `|`/`>` there
    /// are indicators, not scalar text).
    node_start: bool,
    /// Inside a block scalar introduced on a line with this indentation: lines indented
    /// deeper (and blank lines) are its content.
    block_scalar: Option<usize>,
    /// Whether the current line's start has been looked at.
    line_seen: bool,
    /// Loop iterations so far: the tests check this stays proportional to the text.
    steps: usize,
}

impl<'a> Scanner<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Scanner {
            bytes,
            pos: 0,
            line: 0,
            line_start: 0,
            depth: 0,
            node_start: true,
            block_scalar: None,
            line_seen: false,
            steps: 0,
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    /// Whether the byte at `pos + ahead` ends a token (blank, line break or end of text).
    fn blank_at(&self, ahead: usize) -> bool {
        matches!(self.peek(ahead), None | Some(b' ' | b'\t' | b'\r' | b'\n'))
    }

    fn newline(&mut self) {
        self.pos += 1;
        self.line += 1;
        self.line_start = self.pos;
        self.line_seen = false;
        if self.depth == 0 {
            self.node_start = true;
        }
    }

    fn skip_to_line_end(&mut self) {
        while let Some(b) = self.peek(0) {
            self.steps += 1;
            if b == b'\n' {
                return;
            }
            self.pos += 1;
        }
    }

    fn run(&mut self) -> Result<(), (usize, usize)> {
        while let Some(b) = self.peek(0) {
            self.steps += 1;
            if self.pos == self.line_start && self.depth == 0 && !self.line_seen {
                // Directives, document markers and block-scalar content are consumed here;
                // whatever is left of the line is scanned below.
                self.line_seen = true;
                self.line_begins();
                continue;
            }
            match b {
                b'\n' => self.newline(),
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'#' if self.after_blank() => self.skip_to_line_end(),
                b'[' | b'{' if self.node_start || self.depth > 0 => {
                    self.depth += 1;
                    if self.depth >= MAX_FLOW_DEPTH {
                        return Err((self.line, self.pos - self.line_start));
                    }
                    self.pos += 1;
                    self.node_start = true;
                }
                b']' | b'}' if self.depth > 0 => {
                    self.depth -= 1;
                    self.pos += 1;
                    self.node_start = false;
                }
                b',' if self.depth > 0 => {
                    self.pos += 1;
                    self.node_start = true;
                }
                b'\'' | b'"' if self.node_start => {
                    self.quoted(b);
                    self.node_start = false;
                }
                b'|' | b'>' if self.node_start && self.depth == 0 => {
                    let indent = self.indentation();
                    self.skip_to_line_end();
                    self.block_scalar = Some(indent);
                }
                // `- `, `? ` and `: ` introduce a node; so does a bare `:` in a flow collection
                // (`{"a":[1]}`).
                b'-' | b'?' | b':' if self.blank_at(1) || (b == b':' && self.depth > 0) => {
                    self.pos += 1;
                    self.node_start = true;
                }
                // Anchors and tags precede a node's content.
                b'&' | b'!' if self.node_start => {
                    while !self.blank_at(0) && !self.flow_indicator() {
                        self.steps += 1;
                        self.pos += 1;
                    }
                }
                _ => self.plain(),
            }
        }
        Ok(())
    }

    /// At the start of a line outside flow collections: directives, document markers, and the
    /// content lines of a block scalar are skipped.
    fn line_begins(&mut self) {
        let indent = self.indentation();
        self.steps += indent;
        if let Some(parent) = self.block_scalar {
            let rest = &self.bytes[self.pos + indent..];
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            self.steps += end;
            let blank = rest[..end]
                .iter()
                .all(|b| matches!(b, b' ' | b'\t' | b'\r'));
            if blank || indent > parent {
                self.skip_to_line_end();
                return;
            }
            self.block_scalar = None;
        }
        if self.peek(0) == Some(b'%') {
            self.skip_to_line_end();
        } else if (self.bytes[self.pos..].starts_with(b"---")
            || self.bytes[self.pos..].starts_with(b"..."))
            && self.blank_at(3)
        {
            self.pos += 3;
        }
    }

    /// Leading spaces of the current line.
    fn indentation(&self) -> usize {
        self.bytes[self.line_start..]
            .iter()
            .take_while(|&&b| b == b' ')
            .count()
    }

    fn after_blank(&self) -> bool {
        self.pos == 0 || matches!(self.bytes[self.pos - 1], b' ' | b'\t' | b'\n' | b'\r')
    }

    fn flow_indicator(&self) -> bool {
        self.depth > 0 && matches!(self.peek(0), Some(b'[' | b']' | b'{' | b'}' | b','))
    }

    /// A quoted scalar, possibly over several lines: `''` escapes `'`, `\` escapes in `"…"`.
    /// An unterminated one runs to the end of the text.
    fn quoted(&mut self, quote: u8) {
        self.pos += 1;
        while let Some(b) = self.peek(0) {
            self.steps += 1;
            match b {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = self.pos;
                }
                b'\\' if quote == b'"' && self.peek(1) != Some(b'\n') => self.pos += 2,
                b'\'' if quote == b'\'' && self.peek(1) == Some(b'\'') => self.pos += 2,
                b if b == quote => {
                    self.pos += 1;
                    return;
                }
                _ => self.pos += 1,
            }
        }
    }

    /// A plain scalar: up to a line break, ` #`, `: `, or (in a flow collection) a flow
    /// indicator or `:`.
    fn plain(&mut self) {
        self.node_start = false;
        self.pos += 1;
        while let Some(b) = self.peek(0) {
            self.steps += 1;
            let ends = match b {
                b'\n' => true,
                b'#' => self.after_blank(),
                b':' => self.blank_at(1) || self.depth > 0,
                _ => self.flow_indicator(),
            };
            if ends {
                return;
            }
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("spec: {}{}\n", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn deep_flow_nesting_is_found_where_it_passes_the_limit() {
        assert_eq!(check(&nested(MAX_FLOW_DEPTH - 1), 0), Ok(()));
        let e = check(&format!("a: 1\n{}", nested(100_000)), 4).unwrap_err();
        // line 2 of the text, shifted by 4; `spec: ` is 6 columns, then 128 brackets
        assert_eq!((e.line, e.column), (6, 6 + MAX_FLOW_DEPTH));
        assert_eq!(
            e.to_string(),
            format!(
                "recursion limit exceeded at line 6 column {}",
                6 + MAX_FLOW_DEPTH
            )
        );
        let mixed = format!("a: {}", "{b: [".repeat(70));
        assert!(check(&mixed, 0).is_err());
        let json = "{\"a\":[".repeat(70);
        assert!(check(&json, 0).is_err());
    }

    #[test]
    fn brackets_that_are_not_flow_indicators_do_not_count() {
        let deep = "[".repeat(500);
        let texts = [
            format!("a: b{deep}\n"),
            format!("a: '{deep}'\n"),
            format!("a: \"{deep}\\\"\"\n"),
            format!("a: 'it''s {deep}'\n"),
            format!("a: 1 # {deep}\n"),
            format!("# {deep}\n"),
            format!("a: |\n  {deep}\n\n  {deep}\nb: 1\n"),
            format!("- >-\n    {deep}\n- x\n"),
            format!("a: [\"{deep}\", '{deep}']\n"),
            format!("a: [it's, \"{deep}\"]\n"),
            format!("a: ['x', b]  # {deep}\n"),
            format!("%TAG ! {deep}\n---\na: 1\n"),
        ];
        for text in &texts {
            assert_eq!(check(text, 0), Ok(()), "{text:?}");
        }
    }

    #[test]
    fn nesting_after_a_block_scalar_still_counts() {
        let text = format!("a: |\n  x\nb: {}\n", "[".repeat(200));
        assert_eq!(check(&text, 0).map_err(|e| e.line), Err(3));
    }

    /// Every byte is visited a bounded number of times: the scan of a document twice as long
    /// is at most about twice the work, whatever its shape. (Counted, not timed.)
    #[test]
    fn the_scan_is_linear() {
        for unit in ["[", "{a: [", "'x' ", "a: |\n  [[\n", "- [x, 'y', \"z\"]\n"] {
            let text = unit.repeat(10_000);
            let mut s = Scanner::new(text.as_bytes());
            let _ = s.run();
            assert!(s.steps <= 3 * text.len(), "{unit:?}: {} steps", s.steps);
        }
    }
}
