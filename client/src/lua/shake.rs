//! Which parts of `lua/prelude.lua` a script sends: only the helpers its body reaches.
//!
//! Redis runs an EVALSHA script's main chunk from the top on every call, so every
//! `local function` of the prelude becomes a new closure each time, and each closure looks up
//! its upvalues among all the locals captured before it: the whole prelude cost FLASH.RESERVE
//! about as much as its own work. A script therefore carries the prelude's top-level
//! declarations its body uses, directly or through other declarations, and no others, in the
//! prelude's order (so a helper still comes after the ones it calls).
//!
//! The prelude is cut into declarations at its top-level lines (column 0) that begin with
//! `local ` or `function `; each takes the comment lines right above it, and the lines up to
//! the next one (`Args.__index = Args` stays with `local Args = {}`). A declaration defines
//! the names after `local` (`local a, b = …`, `local function f`) or the method after
//! `function Args:` / `function Args.`, and uses the names in its code (comments and strings
//! aside, read by [`lex`]). A name read as a field or method (`args:token`, `r.sku`) counts
//! as a use of any method of that name: taking one too many costs a closure, one too few a
//! nil at run time. What comes before the first declaration (the prelude's opening comment)
//! is always kept.

use std::collections::HashSet;

use super::lexer::lex;

/// One top-level declaration of the prelude and what it defines and uses.
struct Declaration<'a> {
    text: &'a str,
    /// Local variables (and local functions) it declares.
    locals: Vec<&'a str>,
    /// Methods (`function Args:token`) it defines.
    methods: Vec<&'a str>,
    /// Names it reads as variables.
    names: HashSet<&'a str>,
    /// Names it reads as fields or methods.
    fields: HashSet<&'a str>,
}

/// The names a source reads: as variables, and as fields or methods.
fn uses(source: &str) -> (HashSet<&str>, HashSet<&str>) {
    let lexed = lex(source).unwrap_or_else(|error| panic!("a Lua source does not lex: {error}"));
    let mut names = HashSet::new();
    let mut fields = HashSet::new();
    for name in lexed.names {
        if name.field {
            fields.insert(name.text);
        } else {
            names.insert(name.text);
        }
    }
    (names, fields)
}

fn is_start(line: &str) -> bool {
    line.starts_with("local ") || line.starts_with("function ")
}

/// The prelude before its first declaration, and its declarations in order.
fn declarations(prelude: &str) -> (&str, Vec<Declaration<'_>>) {
    // Byte offsets of the lines, with each line.
    let mut lines = Vec::new();
    let mut offset = 0;
    for line in prelude.split_inclusive('\n') {
        lines.push((offset, line));
        offset += line.len();
    }
    // Where each declaration's text begins: its first line, moved up over the comment lines
    // right above it.
    let mut starts = Vec::new();
    for (index, (_, line)) in lines.iter().enumerate() {
        if is_start(line) {
            let mut first = index;
            while first > 0 && lines[first - 1].1.starts_with("--") {
                first -= 1;
            }
            starts.push((lines[first].0, *line));
        }
    }
    let preamble_end = starts.first().map_or(prelude.len(), |(at, _)| *at);
    let mut found = Vec::new();
    for (index, &(start, first_line)) in starts.iter().enumerate() {
        let end = starts.get(index + 1).map_or(prelude.len(), |(at, _)| *at);
        let text = &prelude[start..end];
        let (names, fields) = uses(text);
        let mut locals = Vec::new();
        let mut methods = Vec::new();
        if let Some(rest) = first_line.strip_prefix("local function ") {
            locals.extend(identifier(rest));
        } else if let Some(rest) = first_line.strip_prefix("local ") {
            let declared = rest.split('=').next().unwrap_or_default();
            locals.extend(
                declared
                    .split(',')
                    .filter_map(|name| identifier(name.trim())),
            );
        } else if let Some(rest) = first_line.strip_prefix("function ") {
            let name = rest.split('(').next().unwrap_or_default();
            match name.rsplit_once([':', '.']) {
                Some((_, method)) => methods.push(method),
                None => locals.extend(identifier(name)),
            }
        }
        found.push(Declaration {
            text,
            locals,
            methods,
            names,
            fields,
        });
    }
    (&prelude[..preamble_end], found)
}

/// The identifier at the start of `text`.
fn identifier(text: &str) -> Option<&str> {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (end > 0).then(|| &text[..end])
}

/// The prelude as sent with `body`: its opening comment and the declarations the body needs.
pub fn prelude_for(prelude: &str, body: &str) -> String {
    let (preamble, declarations) = declarations(prelude);
    let (mut names, mut fields) = uses(body);
    let mut kept = vec![false; declarations.len()];
    // Until nothing more is needed: a kept declaration's own uses may need earlier ones.
    loop {
        let mut changed = false;
        for (declaration, kept) in declarations.iter().zip(kept.iter_mut()) {
            let needed = declaration.locals.iter().any(|name| names.contains(name))
                || declaration.methods.iter().any(|name| fields.contains(name));
            if needed && !*kept {
                *kept = true;
                changed = true;
                names.extend(&declaration.names);
                fields.extend(&declaration.fields);
            }
        }
        if !changed {
            break;
        }
    }
    let mut text = preamble.to_owned();
    for (declaration, kept) in declarations.iter().zip(kept) {
        if kept {
            text.push_str(declaration.text);
        }
    }
    text
}

/// The top-level names a prelude declares (locals and methods), for the tests.
#[cfg(test)]
pub fn declared(prelude: &str) -> Vec<&str> {
    declarations(prelude)
        .1
        .iter()
        .flat_map(|declaration| declaration.locals.iter().chain(&declaration.methods))
        .copied()
        .collect()
}
