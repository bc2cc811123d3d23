use serde_json::json;

use super::*;

fn list(format: &str, rows: &[serde_json::Value]) -> String {
    let Format::Template { text, table } = format.parse::<Format>().unwrap() else {
        panic!("{format} is not a template");
    };
    render_list(&text, table, rows, &[("ID", "ID"), ("Name", "NAME")]).unwrap()
}

fn rows() -> Vec<serde_json::Value> {
    vec![
        json!({"ID": "abc", "Name": "web", "Replicas": "3/3"}),
        json!({"ID": "defghijklmno", "Name": "api<1>", "Replicas": "1/1"}),
    ]
}

#[test]
fn fields_render_one_line_per_row() {
    assert_eq!(
        list("{{.Name}} {{.Replicas}}", &rows()),
        "web 3/3\napi<1> 1/1\n"
    );
}

#[test]
fn json_is_gos_encoding_with_sorted_keys_and_no_html_escapes() {
    assert_eq!(
        list("{{json .}}", &rows()[1..]),
        "{\"ID\":\"defghijklmno\",\"Name\":\"api<1>\",\"Replicas\":\"1/1\"}\n"
    );
    assert_eq!(list("{{json .Name}}", &rows()[..1]), "\"web\"\n");
}

#[test]
fn table_adds_a_header_and_aligns_as_gos_tabwriter() {
    // The format text as a shell passes it: a backslash and a t.
    assert_eq!(
        list("table {{.ID}}\\t{{.Name}}", &rows()),
        "ID             NAME\nabc            web\ndefghijklmno   api<1>\n"
    );
    // Narrow columns are still 10 wide (Docker's minimum width).
    assert_eq!(tabwriter("a\tb\nc\td\n"), "a         b\nc         d\n");
}

#[test]
fn plain_words_are_the_builtin_formats() {
    assert_eq!("table".parse::<Format>().unwrap(), Format::Table);
    assert_eq!("json".parse::<Format>().unwrap(), Format::Json);
    assert_eq!(
        "{{.ID}}".parse::<Format>().unwrap(),
        Format::Template {
            text: "{{.ID}}".into(),
            table: false
        }
    );
}

#[test]
fn mistakes_are_errors_that_name_the_template() {
    let err = "{{.Name".parse::<Format>().unwrap_err();
    assert!(err.contains("invalid --format template"), "{err}");
    assert!("{{nosuchfunc .}}".parse::<Format>().is_err());
    // A list row is a struct: a misspelt field is an error, as in Docker.
    let err = render_list("{{.Nmae}}", false, &rows(), &[]).unwrap_err();
    assert!(err.to_string().contains("failed"), "{err}");
}

#[test]
fn inspected_objects_are_maps() {
    let service = json!({"ID": "x", "Spec": {"Name": "web", "Labels": {"a": "b"}}});
    assert_eq!(
        render_each(
            "{{.Spec.Name}} {{.Spec.Labels.a}} {{json .Spec.Labels}}",
            std::slice::from_ref(&service)
        )
        .unwrap(),
        "web b {\"a\":\"b\"}\n"
    );
    assert_eq!(
        render_each("{{.Spec.Missing}}", &[service]).unwrap(),
        "<no value>\n"
    );
}

#[test]
fn dockers_string_functions() {
    let row = [json!({"ID": "abcdef", "Name": "web app", "List": ["a", "b"]})];
    let each = |t: &str| render_each(t, &row).unwrap();
    assert_eq!(each("{{upper .Name}}"), "WEB APP\n");
    assert_eq!(each("{{title .Name}}"), "Web App\n");
    assert_eq!(each("{{truncate .ID 3}}"), "abc\n");
    assert_eq!(each("{{join .List \",\"}}"), "a,b\n");
    assert_eq!(each("{{pad .ID 1 2}}|"), " abcdef  |\n");
    assert_eq!(each("{{len (split .Name \" \")}}"), "2\n");
}
