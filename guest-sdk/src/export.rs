//! The glue between a [`Balancer`](crate::Balancer) or
//! [`HeaderFilter`](crate::HeaderFilter) type and the component's exports.
//! Used through [`export_balancer!`](crate::export_balancer) and
//! [`export_header_filter!`](crate::export_header_filter).

use std::rc::Rc;

use crate::bindings::bascule::plugin::types;
use crate::bindings::exports::bascule::plugin::balance;
use crate::filter_bindings::exports::bascule::plugin::filter;
use crate::{
    Backend, Edit, EditAction, Error, FilterNeeds, Headers, LocalResponse, MAX_CANDIDATES, Options,
    Protocol, Request, RequestNeeds, Verdict,
};

pub use balance::{
    Backend as WitBackend, Candidates as WitCandidates, PluginError, Protocol as WitProtocol,
    RequestFacts, RequestNeeds as WitRequestNeeds, SelectError,
};
pub use filter::{FilterNeeds as WitFilterNeeds, HeaderEdit, Verdict as WitVerdict};
pub use health::{
    ProbeKind as WitProbeKind, ProbeNeeds as WitProbeNeeds, ProbeOutcome as WitProbeOutcome,
    Verdict as WitHealthVerdict,
};

use crate::health::{ProbeKind, ProbeNeeds, ProbeOutcome, Verdict as HealthVerdict};
use crate::health_bindings::exports::bascule::plugin::health;

/// Converts the WIT backend record into the SDK's type.
pub fn backend_from_wit(backend: WitBackend) -> Backend {
    Backend {
        id: backend.id,
        address: backend.address,
        weight: backend.weight,
        ramp_permille: backend.ramp_permille,
        health_permille: backend.health_permille,
        token: backend.token,
        metadata: backend.metadata,
    }
}

/// Builds the options `configure` hands to the balancer.
pub fn options_from_wit(options: String, protocols: Vec<WitProtocol>) -> Options {
    let protocols = protocols.into_iter().map(protocol_from_wit).collect();
    Options::for_protocols(options, protocols)
}

fn protocol_from_wit(protocol: WitProtocol) -> Protocol {
    match protocol {
        WitProtocol::Http => Protocol::Http,
        WitProtocol::Tcp => Protocol::Tcp,
        WitProtocol::Udp => Protocol::Udp,
    }
}

/// Converts an SDK error into the WIT error record.
pub fn error_to_wit(error: Error) -> PluginError {
    PluginError {
        message: error.message().to_owned(),
    }
}

/// The error `configure`-dependent calls report when `configure` never
/// ran.
pub fn not_configured() -> PluginError {
    PluginError {
        message: "plugin used before configure".to_owned(),
    }
}

/// What a plugin declared, as the contract's record.
pub fn needs_to_wit(needs: &RequestNeeds) -> WitRequestNeeds {
    WitRequestNeeds {
        fields: types::RequestFields::from_bits_retain(needs.bits()),
        headers: needs.headers().to_vec(),
        cookies: needs.cookies().to_vec(),
    }
}

/// The request of one call, from what the host passed for `needs`.
pub fn request_from_wit(facts: RequestFacts, needs: &Rc<RequestNeeds>) -> Request {
    let ip = match facts.client.ip {
        types::IpAddress::V4(v4) => crate::request::ip_from_parts(Some(v4), None),
        types::IpAddress::V6(v6) => crate::request::ip_from_parts(None, Some(v6)),
    };
    Request::from_declared(
        protocol_from_wit(facts.protocol),
        (ip, facts.client.port),
        needs,
        facts.values.unwrap_or_default(),
        facts.headers.unwrap_or_default(),
    )
}

/// A balancer's answer as the flat record: the first
/// [`MAX_CANDIDATES`] indices; a failure is logged (the record has no room
/// for text) and reported as `failed`.
pub fn candidates_to_wit(ranked: Result<Vec<u32>, Error>) -> Result<WitCandidates, SelectError> {
    let ranked = ranked.map_err(|error| {
        crate::warn(error.message());
        SelectError::Failed
    })?;
    let slot = |i: usize| ranked.get(i).copied().unwrap_or(0);
    Ok(WitCandidates {
        count: u8::try_from(ranked.len().min(MAX_CANDIDATES)).unwrap_or(0),
        first: slot(0),
        second: slot(1),
        third: slot(2),
        fourth: slot(3),
    })
}

/// What a filter declared, as the contract's record.
pub fn filter_needs_to_wit(needs: &FilterNeeds) -> WitFilterNeeds {
    WitFilterNeeds {
        on_request: needs.on_request.as_ref().map(needs_to_wit),
        on_response: needs
            .on_response
            .as_ref()
            .map(|response| filter::ResponseNeeds {
                request: needs_to_wit(&response.request),
                headers: response.headers.clone(),
            }),
        request_edits: needs
            .request_edits
            .iter()
            .cloned()
            .map(edit_to_wit)
            .collect(),
        response_edits: needs
            .response_edits
            .iter()
            .cloned()
            .map(edit_to_wit)
            .collect(),
    }
}

fn edit_to_wit(edit: Edit) -> HeaderEdit {
    HeaderEdit {
        action: match edit.action {
            EditAction::Set => filter::EditAction::Set,
            EditAction::Append => filter::EditAction::Append,
            EditAction::Remove => filter::EditAction::Remove,
        },
        name: edit.name,
        value: edit.value,
    }
}

/// What a filter declared, kept in the instance's state and shared with
/// every call's [`Request`].
pub struct Declared {
    /// What `on-request` reads.
    pub on_request: Rc<RequestNeeds>,
    /// What `on-response` reads of the request.
    pub on_response: Rc<RequestNeeds>,
    /// The response headers `on-response` reads.
    pub response_headers: Vec<String>,
}

impl Declared {
    /// The shareable form of `needs`.
    pub fn new(needs: &FilterNeeds) -> Self {
        let response = needs.on_response.clone().unwrap_or_default();
        Declared {
            on_request: Rc::new(needs.on_request.clone().unwrap_or_default()),
            on_response: Rc::new(response.request),
            response_headers: response.headers,
        }
    }
}

/// Runs a filter's `on-request` with the buffers built from what the host
/// passed, and turns its answer into the contract's verdict.
pub fn run_on_request(
    facts: RequestFacts,
    needs: &Rc<RequestNeeds>,
    call: impl FnOnce(&Request, &mut Headers) -> Result<Verdict, Error>,
) -> Result<WitVerdict, PluginError> {
    let mut headers = Headers::declared(needs.headers(), facts.headers.clone().unwrap_or_default());
    let request = request_from_wit(facts, needs);
    let verdict = call(&request, &mut headers).map_err(error_to_wit)?;
    let changes = |path| filter::RequestChanges {
        headers: headers.into_edits().into_iter().map(edit_to_wit).collect(),
        path,
    };
    Ok(match verdict {
        Verdict::Forward => WitVerdict::Forward(changes(None)),
        Verdict::Rewrite { path } => WitVerdict::Forward(changes(Some(path))),
        Verdict::Respond(LocalResponse {
            status,
            headers,
            body,
        }) => WitVerdict::Respond(filter::LocalResponse {
            status,
            headers,
            body,
        }),
    })
}

/// Runs a filter's `on-response` and returns its edits.
pub fn run_on_response(
    facts: RequestFacts,
    status: u16,
    response: Option<Vec<(String, String)>>,
    declared: &Declared,
    call: impl FnOnce(u16, &Request, &mut Headers) -> Result<(), Error>,
) -> Result<Vec<HeaderEdit>, PluginError> {
    let request = request_from_wit(facts, &declared.on_response);
    let mut headers = Headers::declared(&declared.response_headers, response.unwrap_or_default());
    call(status, &request, &mut headers).map_err(error_to_wit)?;
    Ok(headers.into_edits().into_iter().map(edit_to_wit).collect())
}

/// The probe kind the host runs, in the SDK's type.
pub fn probe_kind_from_wit(kind: WitProbeKind) -> ProbeKind {
    match kind {
        WitProbeKind::Http => ProbeKind::Http,
        WitProbeKind::Tcp => ProbeKind::Tcp,
        WitProbeKind::Udp => ProbeKind::Udp,
    }
}

/// What an interpreter declared, as the contract's record.
pub fn probe_needs_to_wit(needs: ProbeNeeds) -> WitProbeNeeds {
    WitProbeNeeds {
        headers: needs.headers,
        body: needs.body,
        send: needs.send,
        until: needs.until,
    }
}

/// One probe's outcome, in the SDK's type.
pub fn probe_outcome_from_wit(outcome: WitProbeOutcome) -> ProbeOutcome {
    ProbeOutcome {
        kind: probe_kind_from_wit(outcome.kind),
        status: outcome.status,
        headers: outcome.headers,
        body: outcome.body,
        latency_us: outcome.latency_us,
        error: outcome.error,
    }
}

/// An interpreter's verdict, as the contract's variant.
pub fn health_verdict_to_wit(verdict: HealthVerdict) -> WitHealthVerdict {
    match verdict {
        HealthVerdict::Healthy { reason } => WitHealthVerdict::Healthy(reason),
        HealthVerdict::Degraded {
            weight_factor,
            reason,
        } => WitHealthVerdict::Degraded(health::Degraded {
            weight_factor,
            reason,
        }),
        HealthVerdict::Unhealthy { reason } => WitHealthVerdict::Unhealthy(reason),
    }
}

/// Exports a [`Balancer`](crate::Balancer) implementation as the
/// component's `bascule:plugin/balance` interface.
///
/// Invoke it once, at the crate root of a `cdylib` built for
/// `wasm32-wasip2`. The instance's state lives in a thread-local: a
/// component instance is single-threaded. Compiled natively (unit tests,
/// benchmarks) the macro expands to nothing.
#[macro_export]
macro_rules! export_balancer {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            use $crate::bindings::exports::bascule::plugin::balance::Guest;
            use $crate::export as __glue;

            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<
                    ::std::option::Option<($ty, ::std::rc::Rc<$crate::RequestNeeds>)>,
                > = const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct Export;

            impl Guest for Export {
                fn configure(
                    options: ::std::string::String,
                    protocols: ::std::vec::Vec<__glue::WitProtocol>,
                ) -> ::std::result::Result<__glue::WitRequestNeeds, __glue::PluginError> {
                    let options = __glue::options_from_wit(options, protocols);
                    let balancer = <$ty as $crate::Balancer>::configure(&options)
                        .map_err(__glue::error_to_wit)?;
                    let needs = $crate::Balancer::needs(&balancer);
                    let declared = __glue::needs_to_wit(&needs);
                    STATE.with_borrow_mut(|state| {
                        *state = ::std::option::Option::Some((balancer, ::std::rc::Rc::new(needs)))
                    });
                    ::std::result::Result::Ok(declared)
                }

                fn set_backends(generation: u64, backends: ::std::vec::Vec<__glue::WitBackend>) {
                    let backends = backends.into_iter().map(__glue::backend_from_wit).collect();
                    STATE.with_borrow_mut(|state| {
                        if let ::std::option::Option::Some((balancer, _)) = state.as_mut() {
                            $crate::Balancer::set_backends(balancer, generation, backends);
                        }
                    });
                }

                fn select(
                    request: __glue::RequestFacts,
                ) -> ::std::result::Result<__glue::WitCandidates, __glue::SelectError> {
                    STATE.with_borrow_mut(|state| match state.as_mut() {
                        ::std::option::Option::Some((balancer, needs)) => {
                            let request = __glue::request_from_wit(request, needs);
                            __glue::candidates_to_wit($crate::Balancer::select(balancer, &request))
                        }
                        ::std::option::Option::None => {
                            ::std::result::Result::Err(__glue::SelectError::NotConfigured)
                        }
                    })
                }
            }

    $crate::bindings::export_balancer_world!(Export with_types_in $crate::bindings);
        };
    };
}

/// Exports a [`HeaderFilter`](crate::HeaderFilter) implementation as the
/// component's `bascule:plugin/filter` interface.
///
/// Invoke it once, at the crate root of a `cdylib` built for
/// `wasm32-wasip2`. The filter lives in a thread-local: a component
/// instance is single-threaded. Compiled natively it expands to nothing.
#[macro_export]
macro_rules! export_header_filter {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            use $crate::export as __glue;
            use $crate::filter_bindings::exports::bascule::plugin::filter::Guest;

            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<
                    ::std::option::Option<($ty, __glue::Declared)>,
                > = const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct Export;

            impl Guest for Export {
                fn configure(
                    options: ::std::string::String,
                ) -> ::std::result::Result<__glue::WitFilterNeeds, __glue::PluginError> {
                    let options = $crate::Options::from_json(options);
                    let filter = <$ty as $crate::HeaderFilter>::configure(&options)
                        .map_err(__glue::error_to_wit)?;
                    let needs = $crate::HeaderFilter::declare(&filter);
                    let declared = __glue::filter_needs_to_wit(&needs);
                    STATE.with_borrow_mut(|state| {
                        *state = ::std::option::Option::Some((filter, __glue::Declared::new(&needs)))
                    });
                    ::std::result::Result::Ok(declared)
                }

                fn on_request(
                    request: __glue::RequestFacts,
                ) -> ::std::result::Result<__glue::WitVerdict, __glue::PluginError> {
                    STATE.with_borrow_mut(|state| match state.as_mut() {
                        ::std::option::Option::Some((filter, declared)) => {
                            __glue::run_on_request(request, &declared.on_request, |request, headers| {
                                $crate::HeaderFilter::on_request(filter, request, headers)
                            })
                        }
                        ::std::option::Option::None => {
                            ::std::result::Result::Err(__glue::not_configured())
                        }
                    })
                }

                fn on_response(
                    request: __glue::RequestFacts,
                    status: u16,
                    headers: ::std::option::Option<
                        ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                    >,
                ) -> ::std::result::Result<::std::vec::Vec<__glue::HeaderEdit>, __glue::PluginError>
                {
                    STATE.with_borrow_mut(|state| match state.as_mut() {
                        ::std::option::Option::Some((filter, declared)) => {
                            __glue::run_on_response(
                                request,
                                status,
                                headers,
                                declared,
                                |status, request, headers| {
                                    $crate::HeaderFilter::on_response(
                                        filter, status, request, headers,
                                    )
                                },
                            )
                        }
                        ::std::option::Option::None => {
                            ::std::result::Result::Err(__glue::not_configured())
                        }
                    })
                }
            }

            $crate::filter_bindings::export_header_filter_world!(Export with_types_in $crate::filter_bindings);
        };
    };
}

/// Exports a [`HealthInterpreter`](crate::HealthInterpreter) implementation
/// as the component's `bascule:plugin/health` interface.
///
/// Invoke it once, at the crate root of a `cdylib` built for
/// `wasm32-wasip2`. The interpreter lives in a thread-local: a component
/// instance is single-threaded. Compiled natively it expands to nothing.
#[macro_export]
macro_rules! export_health_interpreter {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            use $crate::export as __glue;
            use $crate::health_bindings::exports::bascule::plugin::health::Guest;

            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$ty>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct Export;

            impl Guest for Export {
                fn configure(
                    options: ::std::string::String,
                    kind: __glue::WitProbeKind,
                ) -> ::std::result::Result<__glue::WitProbeNeeds, __glue::PluginError> {
                    let options = $crate::Options::from_json(options);
                    let interpreter = <$ty as $crate::HealthInterpreter>::configure(
                        &options,
                        __glue::probe_kind_from_wit(kind),
                    )
                    .map_err(__glue::error_to_wit)?;
                    let needs = $crate::HealthInterpreter::needs(&interpreter);
                    STATE.with_borrow_mut(|state| *state = ::std::option::Option::Some(interpreter));
                    ::std::result::Result::Ok(__glue::probe_needs_to_wit(needs))
                }

                fn interpret(outcome: __glue::WitProbeOutcome) -> __glue::WitHealthVerdict {
                    STATE.with_borrow_mut(|state| match state.as_mut() {
                        ::std::option::Option::Some(interpreter) => {
                            let outcome = __glue::probe_outcome_from_wit(outcome);
                            __glue::health_verdict_to_wit($crate::HealthInterpreter::interpret(
                                interpreter,
                                &outcome,
                            ))
                        }
                        ::std::option::Option::None => __glue::WitHealthVerdict::Unhealthy(
                            ::std::string::String::from("interpreter used before configure"),
                        ),
                    })
                }
            }

            $crate::health_bindings::export_health_interpreter_world!(Export with_types_in $crate::health_bindings);
        };
    };
}
