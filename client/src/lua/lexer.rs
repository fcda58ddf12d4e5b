//! A Lua 5.1 source read just far enough for the scripts' assembly (its names, comments and
//! strings skipped: which helpers and constants the code names) and for the tests (its string
//! literals, decoded, with where they start). Not a parser: numbers and operators are stepped
//! over.

/// A string literal: quoted (`'…'`, `"…"`) or long (`[[…]]`, `[==[…]==]`).
#[derive(Debug)]
// Only the tests read a literal's parts.
#[cfg_attr(not(test), allow(dead_code))]
pub struct Literal {
    /// The string it stands for, escapes decoded.
    pub value: Vec<u8>,
    /// Byte offset of its first character (the quote or the bracket).
    pub start: usize,
    /// 1-based line it starts on.
    pub line: usize,
}

/// A name (identifier or keyword) outside comments and strings.
#[derive(Debug)]
pub struct Name<'a> {
    pub text: &'a str,
    /// Right after `.` or `:`: a table field or method, not a variable.
    pub field: bool,
}

#[derive(Debug, Default)]
pub struct Lexed<'a> {
    pub literals: Vec<Literal>,
    pub names: Vec<Name<'a>>,
}

pub fn lex(source: &str) -> Result<Lexed<'_>, String> {
    let bytes = source.as_bytes();
    let line_at = |offset: usize| 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count();
    let mut lexed = Lexed::default();
    // The last two bytes of code before `at`, comments and spaces skipped (a string, name or
    // number as `a`): whether a name follows `.` or `:`, not the end of a comment's sentence.
    let mut last = [b' '; 2];
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if bytes[at..].starts_with(b"--") {
            at = match long_bracket(bytes, at + 2) {
                Some(level) => long_end(bytes, at + 2, level)
                    .ok_or_else(|| format!("line {}: unclosed long comment", line_at(at)))?,
                None => bytes[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |end| at + end),
            };
        } else if byte == b'\'' || byte == b'"' {
            let (value, end) = quoted(bytes, at)
                .ok_or_else(|| format!("line {}: unclosed string", line_at(at)))?;
            lexed.literals.push(Literal {
                value,
                start: at,
                line: line_at(at),
            });
            last = [b'a'; 2];
            at = end;
        } else if let Some(level) = long_bracket(bytes, at) {
            let end = long_end(bytes, at, level)
                .ok_or_else(|| format!("line {}: unclosed long string", line_at(at)))?;
            let open = level + 2;
            let mut value = &bytes[at + open..end - open];
            // A newline right after the opening bracket is not part of the string.
            if let Some(rest) = value.strip_prefix(b"\n") {
                value = rest;
            }
            lexed.literals.push(Literal {
                value: value.to_vec(),
                start: at,
                line: line_at(at),
            });
            last = [b'a'; 2];
            at = end;
        } else if byte.is_ascii_alphabetic() || byte == b'_' {
            let end = word_end(bytes, at);
            let field =
                matches!(last, [b, b'.'] if b != b'.') || matches!(last, [b, b':'] if b != b':');
            lexed.names.push(Name {
                text: &source[at..end],
                field,
            });
            last = [b'a'; 2];
            at = end;
        } else if byte.is_ascii_digit() {
            // A number, hex and exponent letters included: never a name.
            at = word_end(bytes, at);
            last = [b'a'; 2];
        } else {
            if !byte.is_ascii_whitespace() {
                last = [last[1], byte];
            }
            at += 1;
        }
    }
    Ok(lexed)
}

fn word_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
        .map_or(bytes.len(), |len| start + len)
}

/// At `[`, `=`*, `[`: the number of `=`.
fn long_bracket(bytes: &[u8], at: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'[') {
        return None;
    }
    let level = bytes[at + 1..].iter().take_while(|&&b| b == b'=').count();
    (bytes.get(at + 1 + level) == Some(&b'[')).then_some(level)
}

/// The offset just past the `]`, `=`*level, `]` closing the long bracket opened at `at`.
fn long_end(bytes: &[u8], at: usize, level: usize) -> Option<usize> {
    let close: Vec<u8> = std::iter::once(b']')
        .chain(std::iter::repeat_n(b'=', level))
        .chain(std::iter::once(b']'))
        .collect();
    let body = at + level + 2;
    bytes[body..]
        .windows(close.len())
        .position(|window| window == close.as_slice())
        .map(|offset| body + offset + close.len())
}

/// The quoted string opening at `at`, decoded, and the offset past its closing quote.
fn quoted(bytes: &[u8], at: usize) -> Option<(Vec<u8>, usize)> {
    let quote = bytes[at];
    let mut value = Vec::new();
    let mut i = at + 1;
    loop {
        let byte = *bytes.get(i)?;
        i += 1;
        match byte {
            b'\n' => return None,
            b if b == quote => return Some((value, i)),
            b'\\' => {
                let escaped = *bytes.get(i)?;
                i += 1;
                value.push(match escaped {
                    b'a' => 7,
                    b'b' => 8,
                    b'f' => 12,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'v' => 11,
                    b'0'..=b'9' => {
                        // Up to three decimal digits.
                        let mut code = u32::from(escaped - b'0');
                        for _ in 0..2 {
                            match bytes.get(i) {
                                Some(d @ b'0'..=b'9') => {
                                    code = code * 10 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        u8::try_from(code).ok()?
                    }
                    // `\\`, `\'`, `\"`, an escaped newline, and (Lua 5.1) any other
                    // character: itself.
                    other => other,
                });
            }
            b => value.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_literals_and_names_and_skips_comments() {
        let source = "-- it's a 'comment'\n\
                      local a = 'one' .. \"t\\\"wo\" .. [[three]] .. [==[\nfo]]ur]==]\n\
                      --[[ 'long comment' ]] x.field(y:method('\\065\\0661'))\n\
                      -- a sentence ends.\n\
                      after_comment(a .. b, c ..d)";
        let lexed = lex(source).expect("lexes");
        let values: Vec<&[u8]> = lexed.literals.iter().map(|l| &l.value[..]).collect();
        assert_eq!(values, [&b"one"[..], b"t\"wo", b"three", b"fo]]ur", b"AB1"]);
        assert_eq!(lexed.literals[0].line, 2);
        assert_eq!(lexed.literals[4].line, 4);
        let names: Vec<(&str, bool)> = lexed.names.iter().map(|n| (n.text, n.field)).collect();
        assert_eq!(
            names,
            [
                ("local", false),
                ("a", false),
                ("x", false),
                ("field", true),
                ("y", false),
                ("method", true),
                ("after_comment", false),
                ("a", false),
                ("b", false),
                ("c", false),
                ("d", false),
            ]
        );
        assert!(lex("x = 'open").is_err());
    }
}
