//! The glue between a [`Balancer`](crate::Balancer) or
//! [`HeaderFilter`](crate::HeaderFilter) type and the component's exports.
//! Used through [`export_balancer!`](crate::export_balancer) and
//! [`export_header_filter!`](crate::export_header_filter).

use crate::bindings::exports::bascule::plugin::balance;
use crate::filter_bindings::exports::bascule::plugin::filter;
use crate::{Backend, Error, LocalResponse, Options, Protocol, Verdict};

pub use balance::{Backend as WitBackend, PluginError, Protocol as WitProtocol};

/// Converts the WIT backend record into the SDK's type.
pub fn backend_from_wit(backend: WitBackend) -> Backend {
    Backend {
        id: backend.id,
        address: backend.address,
        weight: backend.weight,
        ramp_permille: backend.ramp_permille,
        token: backend.token,
        metadata: backend.metadata,
    }
}

/// Builds the options `configure` hands to the balancer.
pub fn options_from_wit(options: String, protocols: Vec<WitProtocol>) -> Options {
    let protocols = protocols
        .into_iter()
        .map(|protocol| match protocol {
            WitProtocol::Http => Protocol::Http,
            WitProtocol::Tcp => Protocol::Tcp,
        })
        .collect();
    Options::for_protocols(options, protocols)
}

/// Converts an SDK error into the WIT error record.
pub fn error_to_wit(error: Error) -> PluginError {
    PluginError {
        message: error.message().to_owned(),
    }
}

/// The error `select` and `set-backends` report when `configure` never ran.
pub fn not_configured() -> PluginError {
    PluginError {
        message: "plugin used before configure".to_owned(),
    }
}

/// Converts a filter's verdict into the WIT variant.
pub fn verdict_to_wit(verdict: Verdict) -> filter::Verdict {
    match verdict {
        Verdict::Forward => filter::Verdict::Forward,
        Verdict::Respond(LocalResponse {
            status,
            headers,
            body,
        }) => filter::Verdict::Respond(filter::LocalResponse {
            status,
            headers,
            body,
        }),
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
                static STATE: ::std::cell::RefCell<::std::option::Option<$ty>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct Export;

            impl Guest for Export {
                fn configure(
                    options: ::std::string::String,
                    protocols: ::std::vec::Vec<__glue::WitProtocol>,
                ) -> ::std::result::Result<(), __glue::PluginError> {
                    let options = __glue::options_from_wit(options, protocols);
                    let balancer = <$ty as $crate::Balancer>::configure(&options)
                        .map_err(__glue::error_to_wit)?;
                    STATE.with_borrow_mut(|state| *state = ::std::option::Option::Some(balancer));
                    ::std::result::Result::Ok(())
                }

                fn set_backends(generation: u64, backends: ::std::vec::Vec<__glue::WitBackend>) {
                    let backends = backends.into_iter().map(__glue::backend_from_wit).collect();
                    STATE.with_borrow_mut(|state| {
                        if let ::std::option::Option::Some(balancer) = state.as_mut() {
                            $crate::Balancer::set_backends(balancer, generation, backends);
                        }
                    });
                }

                fn select() -> ::std::result::Result<::std::vec::Vec<u32>, __glue::PluginError> {
                    STATE.with_borrow_mut(|state| match state.as_mut() {
                        ::std::option::Option::Some(balancer) => {
                            $crate::Balancer::select(balancer, &$crate::Request::current())
                                .map_err(__glue::error_to_wit)
                        }
                        ::std::option::Option::None => {
                            ::std::result::Result::Err(__glue::not_configured())
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
            use $crate::filter_bindings::exports::bascule::plugin::filter::{
                Guest, PluginError, Verdict,
            };

            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$ty>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct Export;

            impl Guest for Export {
                fn configure(
                    options: ::std::string::String,
                ) -> ::std::result::Result<(), PluginError> {
                    let options = $crate::Options::from_json(options);
                    let filter = <$ty as $crate::HeaderFilter>::configure(&options)
                        .map_err(__glue::error_to_wit)?;
                    STATE.with_borrow_mut(|state| *state = ::std::option::Option::Some(filter));
                    ::std::result::Result::Ok(())
                }

                fn on_request() -> ::std::result::Result<Verdict, PluginError> {
                    STATE.with_borrow_mut(|state| match state.as_mut() {
                        ::std::option::Option::Some(filter) => $crate::HeaderFilter::on_request(
                            filter,
                            &$crate::Request::current(),
                            &mut $crate::Headers::current(),
                        )
                        .map(__glue::verdict_to_wit)
                        .map_err(__glue::error_to_wit),
                        ::std::option::Option::None => {
                            ::std::result::Result::Err(__glue::not_configured())
                        }
                    })
                }

                fn on_response(status: u16) -> ::std::result::Result<(), PluginError> {
                    STATE.with_borrow_mut(|state| match state.as_mut() {
                        ::std::option::Option::Some(filter) => $crate::HeaderFilter::on_response(
                            filter,
                            status,
                            &$crate::Request::current(),
                            &mut $crate::Headers::current(),
                        )
                        .map_err(__glue::error_to_wit),
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
