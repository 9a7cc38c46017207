//! The card field reference in `docs/mapping.md` is the one the schema
//! descriptors generate: a field added to the schema without regenerating the
//! doc fails here.

use authbridge::schema::reference;

use crate::helpers::repo_path;

#[test]
fn card_reference_in_docs_matches_the_schema() {
    let doc = std::fs::read_to_string(repo_path("docs/mapping.md")).unwrap();
    let expected = reference::splice(&doc, &reference::markdown())
        .expect("docs/mapping.md lost its card-reference marker comments");
    assert!(
        doc == expected,
        "docs/mapping.md's card field reference differs from the schema descriptors; \
         regenerate it with `cargo run -- reference --write docs/mapping.md`"
    );
}

#[test]
fn card_reference_lists_every_object_with_types_and_versions() {
    let text = reference::markdown();
    for heading in [
        "#### Client",
        "#### Company",
        "#### Branch",
        "#### Contacts",
        "#### Group",
        "#### Field",
        "#### User",
        "#### Order",
    ] {
        assert!(
            text.contains(&format!("{heading}\n")),
            "{heading} missing:\n{text}"
        );
    }
    // A row of each kind: a required field, an object field that came
    // with a later version, a field whose type is described in words.
    for row in [
        "| `surname` | string | yes | 1.0 |",
        "| `contacts` | object Contacts | no | 1.2 |",
        "| `createdOn` | Unix timestamp (seconds, as a string) | yes |",
    ] {
        assert!(text.contains(row), "{row} missing:\n{text}");
    }
}
