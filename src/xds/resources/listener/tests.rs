use envoy_types::pb::envoy::extensions::access_loggers::file::v3::file_access_log::AccessLogFormat;

use super::*;

fn log(json: &[(&str, &str)], text: Option<&str>) -> ir::AccessLog {
    ir::AccessLog {
        path: "/dev/stdout".into(),
        text_format: text.map(str::to_string),
        json_format: json
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn decoded(log: &ir::AccessLog) -> FileAccessLog {
    let any = file_access_log_config(log);
    assert_eq!(any.type_url, FileAccessLog::type_url());
    FileAccessLog::decode(any.value.as_slice()).unwrap()
}

#[test]
fn json_access_log_decodes_to_the_same_struct_prost_would_build() {
    let pairs = [
        ("a", "%START_TIME%"),
        ("b", "%RESPONSE_CODE%"),
        ("c", "%REQ(:PATH)%"),
    ];
    let string = |v: &str| Value {
        kind: Some(value::Kind::StringValue(v.to_string())),
    };
    let expected = FileAccessLog {
        path: "/dev/stdout".into(),
        access_log_format: Some(AccessLogFormat::LogFormat(SubstitutionFormatString {
            format: Some(substitution_format_string::Format::JsonFormat(Struct {
                fields: pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), string(v)))
                    .collect(),
            })),
            ..Default::default()
        })),
    };
    assert_eq!(decoded(&log(&pairs, None)), expected);
}

#[test]
fn access_log_bytes_are_deterministic() {
    let pairs: Vec<(String, String)> = (0..20)
        .map(|i| (format!("k{i}"), format!("%v{i}%")))
        .collect();
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let first = file_access_log_config(&log(&refs, None));
    for _ in 0..20 {
        assert_eq!(file_access_log_config(&log(&refs, None)), first);
    }
}

#[test]
fn text_and_default_access_logs() {
    let text = decoded(&log(&[], Some("%RESPONSE_CODE%\n")));
    let Some(AccessLogFormat::LogFormat(sfs)) = text.access_log_format else {
        panic!("expected a log format");
    };
    assert!(matches!(
        sfs.format,
        Some(substitution_format_string::Format::TextFormatSource(_))
    ));
    assert_eq!(decoded(&log(&[], None)).access_log_format, None);
}
