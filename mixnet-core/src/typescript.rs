//! The TypeScript types of what JavaScript hands the wasm (options), generated from the
//! Rust types by tests with `ts-rs` (feature `ts`, never in a wasm build), so the
//! worker's `.ts` files cannot drift from what the wasm accepts.

use std::path::Path;

/// Writes `declarations` (ts-rs `decl` strings, each `type Name = …;` after its docs)
/// as exported types to `path` when `UPDATE_TS` is set; otherwise panics unless the
/// committed file already says exactly that. `command` is how to regenerate it.
pub fn check_file(path: &Path, command: &str, declarations: &[String]) {
    check_file_with(path, command, "", declarations);
}

/// [`check_file`], with `imports` (TypeScript `import type` lines for the types the
/// declarations name but do not define) after the header.
pub fn check_file_with(path: &Path, command: &str, imports: &str, declarations: &[String]) {
    let mut text = format!(
        "// Generated from the Rust types by `{command}` (ts-rs): do not edit.\n\
         // After changing them, run it with UPDATE_TS=1 and commit this file.\n"
    );
    if !imports.is_empty() {
        text.push('\n');
        text.push_str(imports);
    }
    for d in declarations {
        let at = d.find("type ").expect("a ts-rs declaration");
        text.push('\n');
        text.push_str(&d[..at]);
        text.push_str("export ");
        text.push_str(&d[at..]);
        text.push('\n');
    }
    if std::env::var_os("UPDATE_TS").is_some() {
        std::fs::write(path, &text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is not what the Rust types generate: run `UPDATE_TS=1 {command}` and commit it",
        path.display()
    );
}

/// The field names of a ts-rs object type's declaration, in order.
pub fn object_names(decl: &str) -> Vec<String> {
    let body = &decl[decl.find('{').expect("an object type") + 1..decl.rfind('}').expect("its end")];
    let mut names = Vec::new();
    let mut depth = 0;
    let mut field = String::new();
    let mut in_comment = false;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if in_comment {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                in_comment = false;
            }
            continue;
        }
        match c {
            '/' if chars.peek() == Some(&'*') => in_comment = true,
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            ':' if depth == 0 && !field.trim().is_empty() => {
                names.push(field.trim().trim_end_matches('?').to_owned());
                field.clear();
            }
            ',' if depth == 0 => field.clear(),
            _ if depth == 0 => field.push(c),
            _ => {}
        }
    }
    names
}

/// A ts-rs object type's declaration, with a first field `type: "tag"` when it is a
/// tagged event; panics unless its field names are `names`, those of the object the
/// value is built into (so the type and the object cannot drift apart).
pub fn object_declaration(decl: &str, tag: Option<&str>, names: &[&str]) -> String {
    assert_eq!(object_names(decl), names, "{decl}");
    match tag {
        None => decl.to_owned(),
        Some(tag) => {
            let at = decl.find("= {").expect("an object type") + 3;
            format!("{} type: \"{tag}\",{}", &decl[..at], &decl[at..])
        }
    }
}
