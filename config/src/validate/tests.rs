use std::path::Path;

use crate::ConfigErrors;

fn errors(text: &str) -> ConfigErrors {
    crate::parse(text, Path::new("test.yaml"), Path::new(".")).unwrap_err()
}

#[test]
fn bundled_example_is_valid() {
    crate::parse(crate::EXAMPLE, Path::new("scalegate.yaml"), Path::new(".")).unwrap();
}

#[test]
fn unknown_field_points_at_the_key() {
    let error = &errors("bogus: 1\n").0[0];
    assert_eq!(
        (error.line, error.column, error.path.as_str()),
        (1, 1, "bogus")
    );
}
