//! The route options as gateway objects, and how they are told from what
//! AWS shows. Pure.
//!
//! - A CORS preflight ([`Preflight`]) is an OPTIONS method with a MOCK
//!   integration (request template `{"statusCode": 200}`), a method response
//!   200 declaring the `Access-Control-*` headers, and an integration
//!   response 200 mapping them to static values. With more than one allowed
//!   origin, `Access-Control-Allow-Origin` (which holds one) is the first,
//!   and a response template puts the request's `Origin` there instead when
//!   it is one of the list (`Vary: Origin` tells caches). All of it comes
//!   back in GetResources(embed=methods), so drift is seen in the one read a
//!   pass makes.
//! - Throttling lives in the stage's method settings: see
//!   [`super::stage_settings`].

use std::collections::BTreeMap;

use super::model::{
    pointer, IntegrationResponse, MethodResponses, ObservedIntegration, ObservedMethod, PatchOp,
    StageMethodSetting,
};
use super::stage_settings::{default_throttling, describe_throttling, settings_key};
use crate::manifest::{HttpMethod, Mount};

/// The request template of a MOCK integration that answers 200.
pub const MOCK_REQUEST_TEMPLATE: &str = "{\"statusCode\": 200}";

const JSON: &str = "application/json";
const STATUS: &str = "200";
const HEADER: &str = "method.response.header.";

/// What an in-place repair of a preflight sends, in this order: headers
/// the method response must declare (UpdateMethodResponse), the MOCK
/// request template (UpdateIntegration), the integration response's
/// mappings and template (UpdateIntegrationResponse), then the headers it
/// no longer declares. Each part may be empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PreflightRepair {
    pub declare: Vec<PatchOp>,
    pub request: Vec<PatchOp>,
    pub response: Vec<PatchOp>,
    pub undeclare: Vec<PatchOp>,
}

/// The status code of a preflight's answer.
pub const PREFLIGHT_STATUS: &str = STATUS;

/// The CORS preflight answer of one mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// Response headers and their static values, sorted by name.
    pub headers: BTreeMap<String, String>,
    /// Origins to echo back, when there are several.
    pub echo: Vec<String>,
    /// For plans and the route tree.
    pub summary: String,
}

impl Preflight {
    /// The preflight a mount asks for, if it asks for one.
    pub fn of(mount: &Mount) -> Option<Preflight> {
        let cors = mount.cors.as_ref()?;
        let mut headers = BTreeMap::new();
        headers.insert(
            "Access-Control-Allow-Origin".to_string(),
            cors.allow_origins[0].clone(),
        );
        headers.insert(
            "Access-Control-Allow-Methods".to_string(),
            cors.methods_header(&mount.methods),
        );
        // An empty list allows no request headers beyond the simple ones: the
        // header is left out, as an empty expose list is, rather than sent as
        // an empty static value.
        let allow_headers = cors.headers_header();
        if !allow_headers.is_empty() {
            headers.insert("Access-Control-Allow-Headers".to_string(), allow_headers);
        }
        if !cors.expose_headers.is_empty() {
            headers.insert(
                "Access-Control-Expose-Headers".to_string(),
                cors.expose_headers.join(","),
            );
        }
        if let Some(age) = cors.max_age {
            headers.insert("Access-Control-Max-Age".to_string(), age.to_string());
        }
        if cors.allow_credentials {
            headers.insert(
                "Access-Control-Allow-Credentials".to_string(),
                "true".to_string(),
            );
        }
        let echo = if cors.echoes_origin() {
            headers.insert("Vary".to_string(), "Origin".to_string());
            cors.allow_origins.clone()
        } else {
            Vec::new()
        };
        Some(Preflight {
            headers,
            echo,
            summary: cors.summary(),
        })
    }

    /// The method response it declares.
    pub fn method_responses(&self) -> MethodResponses {
        let params = self
            .headers
            .keys()
            .map(|h| (format!("{HEADER}{h}"), false))
            .collect();
        [(STATUS.to_string(), params)].into()
    }

    /// Its MOCK integration, integration response included.
    pub fn integration(&self) -> ObservedIntegration {
        let parameters = self
            .headers
            .iter()
            .map(|(h, v)| (format!("{HEADER}{h}"), format!("'{v}'")))
            .collect();
        let templates = match self.template() {
            Some(t) => [(JSON.to_string(), t)].into(),
            None => BTreeMap::new(),
        };
        ObservedIntegration {
            kind: "MOCK".into(),
            http_method: None,
            uri: None,
            timeout_ms: None,
            request_templates: [(JSON.to_string(), MOCK_REQUEST_TEMPLATE.to_string())].into(),
            responses: [(
                STATUS.to_string(),
                IntegrationResponse {
                    parameters,
                    templates,
                },
            )]
            .into(),
        }
    }

    /// The response template that echoes an allowed `Origin` (several origins only).
    fn template(&self) -> Option<String> {
        if self.echo.is_empty() {
            return None;
        }
        let test: Vec<String> = self
            .echo
            .iter()
            .map(|o| format!("$origin == \"{o}\""))
            .collect();
        Some(format!(
            "#set($origin = $input.params().header.get(\"Origin\"))\n#if(\"$!origin\" == \"\")#set($origin = $input.params().header.get(\"origin\"))#end\n#if({})\n#set($context.responseOverride.header.Access-Control-Allow-Origin = $origin)\n#end\n",
            test.join(" || ")
        ))
    }

    /// Whether an observed OPTIONS method answers as this preflight (its
    /// method settings are compared apart).
    pub fn answered_by(&self, m: &ObservedMethod) -> bool {
        m.responses == self.method_responses()
            && m.integration
                .as_ref()
                .is_some_and(|i| i.same_as(&self.integration()))
    }

    /// The patches that make an observed preflight answer as this one, in
    /// place: `None` when it is not a preflight of this shape (not MOCK, or
    /// with other status codes), which is made again whole instead.
    pub fn repairs(&self, m: &ObservedMethod) -> Option<PreflightRepair> {
        let have = m.integration.as_ref()?;
        let want = self.integration();
        if have.kind != want.kind
            || m.responses.keys().ne([STATUS].iter().copied())
            || have.responses.keys().ne([STATUS].iter().copied())
        {
            return None;
        }
        let declared = &m.responses[STATUS];
        let wanted = &self.method_responses()[STATUS];
        let declare = wanted
            .keys()
            .filter(|k| !declared.contains_key(*k))
            .map(|k| {
                PatchOp::Add(
                    format!("/responseParameters/{}", pointer(k)),
                    "false".into(),
                )
            })
            .collect();
        let undeclare = declared
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .map(|k| PatchOp::Remove(format!("/responseParameters/{}", pointer(k))))
            .collect();
        let mut request = Vec::new();
        for (ct, t) in &want.request_templates {
            match have.request_templates.get(ct) {
                Some(h) if h == t => {}
                Some(_) => request.push(PatchOp::Replace(
                    format!("/requestTemplates/{}", pointer(ct)),
                    t.clone(),
                )),
                None => request.push(PatchOp::Add(
                    format!("/requestTemplates/{}", pointer(ct)),
                    t.clone(),
                )),
            }
        }
        for ct in have.request_templates.keys() {
            if !want.request_templates.contains_key(ct) {
                request.push(PatchOp::Remove(format!(
                    "/requestTemplates/{}",
                    pointer(ct)
                )));
            }
        }
        let (h, w) = (&have.responses[STATUS], &want.responses[STATUS]);
        let mut response = Vec::new();
        let mut fields =
            |prefix: &str, have: &BTreeMap<String, String>, want: &BTreeMap<String, String>| {
                for (k, v) in want {
                    let path = format!("/{prefix}/{}", pointer(k));
                    match have.get(k) {
                        Some(x) if x == v => {}
                        Some(_) => response.push(PatchOp::Replace(path, v.clone())),
                        None => response.push(PatchOp::Add(path, v.clone())),
                    }
                }
                for k in have.keys().filter(|k| !want.contains_key(*k)) {
                    response.push(PatchOp::Remove(format!("/{prefix}/{}", pointer(k))));
                }
            };
        fields("responseParameters", &h.parameters, &w.parameters);
        fields("responseTemplates", &h.templates, &w.templates);
        Some(PreflightRepair {
            declare,
            request,
            response,
            undeclare,
        })
    }

    /// How an observed OPTIONS method differs from this preflight, in words.
    pub fn diff(&self, m: &ObservedMethod) -> String {
        let want = self.integration();
        match &m.integration {
            None => return "integration missing".into(),
            Some(i) if i.kind != want.kind => return format!("type {} -> MOCK", i.kind),
            Some(i) if i.request_templates != want.request_templates => {
                return "request template differs".into()
            }
            _ => {}
        }
        if m.responses != self.method_responses() {
            return "method response headers differ".into();
        }
        let have = m
            .integration
            .as_ref()
            .and_then(|i| i.responses.get(STATUS))
            .cloned()
            .unwrap_or_default();
        let want = &want.responses[STATUS];
        for (name, value) in &want.parameters {
            match have.parameters.get(name) {
                Some(v) if v == value => {}
                Some(v) => {
                    let short = name.trim_start_matches(HEADER);
                    return format!("{short} {v} -> {value}");
                }
                None => {
                    let short = name.trim_start_matches(HEADER);
                    return format!("{short} missing");
                }
            }
        }
        "integration response differs".into()
    }
}

/// Notes for the route tree (`status --tree`) about one method: its
/// preflight, timeout and throttling. `settings` are the stage's method
/// settings, when the stage was read.
pub fn tree_notes(
    path: &str,
    verb: &str,
    m: &ObservedMethod,
    settings: Option<&BTreeMap<String, StageMethodSetting>>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(i) = &m.integration {
        if verb == HttpMethod::Options.as_str() && i.kind == "MOCK" {
            let origin = i
                .responses
                .get(STATUS)
                .and_then(|r| {
                    r.parameters
                        .get(&format!("{HEADER}Access-Control-Allow-Origin"))
                })
                .map(|v| v.trim_matches('\'').to_string());
            if let Some(origin) = origin {
                out.push(format!("CORS preflight for {origin}"));
            }
        }
        if let Some(t) = i
            .timeout_ms
            .filter(|t| *t != super::model::DEFAULT_TIMEOUT_MS)
        {
            out.push(format!("timeout {t} ms"));
        }
    }
    // ANY is throttled per verb; its GET entry stands for the others.
    let key_verb = if verb == HttpMethod::Any.as_str() {
        HttpMethod::Get.as_str()
    } else {
        verb
    };
    if let Some(settings) = settings {
        if let Some(entry) = settings.get(&settings_key(path, key_verb)) {
            if entry.throttling() != default_throttling(settings) {
                out.push(format!(
                    "throttle {}",
                    describe_throttling(entry.throttling())
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::options::DEFAULT_ALLOW_HEADERS;
    use crate::plan::model::Rate;
    use std::path::Path;

    fn mount(extra: &str) -> Mount {
        crate::manifest::parse(
            Path::new("m.yaml"),
            format!(
                "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: m\nspec:\n  path: /accounts\n  function: f\n{extra}"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn one_origin_is_static_several_are_echoed() {
        assert_eq!(Preflight::of(&mount("")), None);
        let p = Preflight::of(&mount(
            "  cors:\n    allowOrigins: [\"https://a.example\"]\n    maxAge: 600\n",
        ))
        .unwrap();
        assert_eq!(
            p.headers.keys().collect::<Vec<_>>(),
            vec![
                "Access-Control-Allow-Headers",
                "Access-Control-Allow-Methods",
                "Access-Control-Allow-Origin",
                "Access-Control-Max-Age"
            ]
        );
        let i = p.integration();
        assert_eq!(i.kind, "MOCK");
        assert_eq!(i.request_templates[JSON], MOCK_REQUEST_TEMPLATE);
        let r = &i.responses[STATUS];
        assert_eq!(
            r.parameters[&format!("{HEADER}Access-Control-Allow-Origin")],
            "'https://a.example'"
        );
        assert_eq!(
            r.parameters[&format!("{HEADER}Access-Control-Allow-Methods")],
            "'DELETE,GET,HEAD,OPTIONS,PATCH,POST,PUT'"
        );
        assert!(r.templates.is_empty());
        assert!(p.method_responses()[STATUS]
            .values()
            .all(|required| !required));

        let several = Preflight::of(&mount(
            "  methods: [GET]\n  cors:\n    allowOrigins: [\"https://a.example\", \"https://b.example\"]\n    allowCredentials: true\n",
        ))
        .unwrap();
        assert_eq!(several.headers["Vary"], "Origin");
        assert_eq!(several.headers["Access-Control-Allow-Credentials"], "true");
        assert_eq!(
            several.headers["Access-Control-Allow-Methods"],
            "GET,OPTIONS"
        );
        let t = &several.integration().responses[STATUS].templates[JSON];
        assert!(
            t.contains("$origin == \"https://a.example\" || $origin == \"https://b.example\""),
            "{t}"
        );
    }

    #[test]
    fn empty_header_lists_leave_their_header_out() {
        let cases = [
            ("", Some(DEFAULT_ALLOW_HEADERS.join(",")), None),
            ("    allowHeaders: []\n", None, None),
            (
                "    exposeHeaders: []\n",
                Some(DEFAULT_ALLOW_HEADERS.join(",")),
                None,
            ),
            (
                "    allowHeaders: [X-One]\n    exposeHeaders: [X-Two]\n",
                Some("X-One".to_string()),
                Some("X-Two".to_string()),
            ),
        ];
        for (lists, allow, expose) in cases {
            let p = Preflight::of(&mount(&format!(
                "  cors:\n    allowOrigins: [\"*\"]\n{lists}"
            )))
            .unwrap();
            assert_eq!(
                p.headers.get("Access-Control-Allow-Headers"),
                allow.as_ref(),
                "{lists}"
            );
            assert_eq!(
                p.headers.get("Access-Control-Expose-Headers"),
                expose.as_ref(),
                "{lists}"
            );
            assert!(p.integration().responses[STATUS]
                .parameters
                .values()
                .all(|v| v != "''"));
        }
    }

    /// A method answering as the preflight `p` asks.
    fn answering(p: &Preflight) -> ObservedMethod {
        ObservedMethod {
            authorization_type: "NONE".into(),
            authorizer_id: None,
            api_key_required: false,
            operation_name: None,
            integration: Some(p.integration()),
            responses: p.method_responses(),
        }
    }

    #[test]
    fn drift_of_a_preflight_is_seen() {
        let p = Preflight::of(&mount("  cors:\n    allowOrigins: [\"*\"]\n")).unwrap();
        let mut m = answering(&p);
        assert!(p.answered_by(&m));
        m.integration
            .as_mut()
            .unwrap()
            .responses
            .get_mut(STATUS)
            .unwrap()
            .parameters
            .insert(
                format!("{HEADER}Access-Control-Allow-Origin"),
                "'https://evil.example'".into(),
            );
        assert!(!p.answered_by(&m));
        assert_eq!(
            p.diff(&m),
            "Access-Control-Allow-Origin 'https://evil.example' -> '*'"
        );
        // An OPTIONS method re-pointed at a function by hand.
        m.integration = Some(ObservedIntegration::lambda_proxy("arn:f"));
        assert!(!p.answered_by(&m));
        assert_eq!(p.diff(&m), "type AWS_PROXY -> MOCK");
        m.integration = None;
        assert_eq!(p.diff(&m), "integration missing");
        // What the route tree says of it.
        m.integration = Some(p.integration().with_timeout(Some(29_000)));
        assert_eq!(
            tree_notes("/accounts", "OPTIONS", &m, None),
            vec!["CORS preflight for *"]
        );
    }

    #[test]
    fn a_preflight_is_repaired_in_place() {
        let one = Preflight::of(&mount(
            "  cors:\n    allowOrigins: [\"https://a.example\"]\n    maxAge: 600\n",
        ))
        .unwrap();
        let have = answering(&one);
        assert_eq!(one.repairs(&have), Some(PreflightRepair::default()));
        // Another max age: one replace of the mapping, nothing else.
        let other = Preflight::of(&mount(
            "  cors:\n    allowOrigins: [\"https://a.example\"]\n    maxAge: 300\n",
        ))
        .unwrap();
        let r = other.repairs(&have).unwrap();
        assert_eq!(
            r.response,
            vec![PatchOp::Replace(
                "/responseParameters/method.response.header.Access-Control-Max-Age".into(),
                "'300'".into()
            )]
        );
        assert!(r.declare.is_empty() && r.undeclare.is_empty() && r.request.is_empty());
        // Several origins: Vary declared and mapped, the echo template added;
        // back to one: all of it taken away, the declaration last.
        let several = Preflight::of(&mount(
            "  cors:\n    allowOrigins: [\"https://a.example\", \"https://b.example\"]\n    maxAge: 600\n",
        ))
        .unwrap();
        let r = several.repairs(&have).unwrap();
        assert_eq!(
            r.declare,
            vec![PatchOp::Add(
                "/responseParameters/method.response.header.Vary".into(),
                "false".into()
            )]
        );
        assert!(r.response.contains(&PatchOp::Add(
            "/responseTemplates/application~1json".into(),
            several.template().unwrap()
        )));
        let back = one.repairs(&answering(&several)).unwrap();
        assert_eq!(
            back.undeclare,
            vec![PatchOp::Remove(
                "/responseParameters/method.response.header.Vary".into()
            )]
        );
        assert!(back.response.contains(&PatchOp::Remove(
            "/responseTemplates/application~1json".into()
        )));
        // A request template changed by hand: put back by a replace.
        let mut edited = have.clone();
        for t in edited
            .integration
            .as_mut()
            .unwrap()
            .request_templates
            .values_mut()
        {
            *t = "{\"statusCode\": 500}".into();
        }
        let want_templates = &one.integration().request_templates;
        assert!(!want_templates.is_empty());
        let r = one.repairs(&edited).unwrap();
        let replaces: Vec<PatchOp> = want_templates
            .iter()
            .map(|(ct, t)| {
                PatchOp::Replace(format!("/requestTemplates/{}", pointer(ct)), t.clone())
            })
            .collect();
        assert_eq!(r.request, replaces);
        // Not a preflight of this shape: made again whole.
        let mut proxy = have.clone();
        proxy.integration = Some(ObservedIntegration::lambda_proxy("u"));
        assert_eq!(one.repairs(&proxy), None);
        let mut extra = have.clone();
        extra.responses.insert("404".into(), BTreeMap::new());
        assert_eq!(one.repairs(&extra), None);
        let mut bare = have;
        bare.integration = None;
        assert_eq!(one.repairs(&bare), None);
    }

    #[test]
    fn the_tree_names_a_preflight_only_on_an_options_mock() {
        let p = Preflight::of(&mount(
            "  cors:\n    allowOrigins: [\"https://a.example\"]\n",
        ))
        .unwrap();
        let m = answering(&p);
        assert_eq!(
            tree_notes("/accounts", "OPTIONS", &m, None),
            vec!["CORS preflight for https://a.example"]
        );
        // The same answer on another verb, or not from a MOCK integration,
        // is no preflight.
        assert!(tree_notes("/accounts", "GET", &m, None).is_empty());
        let mut http = m.clone();
        http.integration.as_mut().unwrap().kind = "HTTP".into();
        assert!(tree_notes("/accounts", "OPTIONS", &http, None).is_empty());
    }

    #[test]
    fn the_tree_shows_a_routes_own_throttling() {
        let entry = |rate: f64, burst: i32| StageMethodSetting {
            rate_limit: Rate(rate),
            burst_limit: burst,
            behaviour: Default::default(),
        };
        let mut settings: BTreeMap<String, StageMethodSetting> = BTreeMap::new();
        settings.insert(settings_key("/accounts", "GET"), entry(10.0, 20));
        settings.insert(settings_key("/b", "GET"), entry(50.0, 100));
        settings.insert("*/*".into(), entry(50.0, 100));
        let m = ObservedMethod {
            authorization_type: "NONE".into(),
            authorizer_id: None,
            api_key_required: false,
            operation_name: None,
            integration: Some(ObservedIntegration::lambda_proxy("u").with_timeout(Some(5000))),
            responses: MethodResponses::new(),
        };
        assert_eq!(
            tree_notes("/accounts", "ANY", &m, Some(&settings)),
            vec!["timeout 5000 ms", "throttle 10 requests/s, burst 20"]
        );
        assert_eq!(
            tree_notes("/accounts", "POST", &m, Some(&settings)),
            vec!["timeout 5000 ms"]
        );
        // An entry that only follows the stage default is not the route's own.
        assert_eq!(
            tree_notes("/b", "GET", &m, Some(&settings)),
            vec!["timeout 5000 ms"]
        );
        assert_eq!(
            tree_notes("/accounts", "GET", &m, None),
            vec!["timeout 5000 ms"]
        );
    }
}
