//! `ov_capi`: the part of OpenVINO's C API (`openvino/c/openvino.h`, 2.0 API) that the
//! `openvino` backend calls, resolved at run time from `libopenvino_c.so.*` with
//! `libloading`, and small owning wrappers that free what they hold when dropped.
//!
//! The declarations are written from the public headers the wheel ships
//! (`openvino/include/openvino/c/`), for the functions used: read a model, look at its
//! one input and output, make the input's batch static, compile with properties,
//! create infer requests, run one on a host tensor and read the output tensor. C enums
//! (`ov_status_e`, `ov_element_type_e`) travel as `int`. Every call returns a status;
//! on failure `ov_get_last_err_msg` holds OpenVINO's message.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::ptr;
use std::sync::Arc;

use libloading::os::unix::Library;

use crate::base::op_profile::OpTotals;

/// Declares opaque C structs, used only behind pointers.
macro_rules! opaque {
    ($($name:ident),* $(,)?) => {
        $(
            #[allow(non_camel_case_types)]
            #[repr(C)]
            pub struct $name {
                _private: [u8; 0],
            }
        )*
    };
}

opaque!(
    ov_core_t,
    ov_model_t,
    ov_compiled_model_t,
    ov_infer_request_t,
    ov_tensor_t,
    ov_output_const_port_t,
);

/// `ov_shape_t`: a static shape. OpenVINO owns the dims of a shape it returns (freed
/// with `ov_shape_free`); a shape passed in by value only lends them for the call.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct ov_shape_t {
    rank: i64,
    dims: *mut i64,
}

/// `ov_dimension_t` (also `ov_rank_t`): an interval; `-1` as max is unbounded.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ov_dimension_t {
    min: i64,
    max: i64,
}

/// `ov_partial_shape_t`: a shape whose dimensions may be intervals. Passed by value
/// to OpenVINO (a copy of the two words; the dims stay ours to free).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ov_partial_shape_t {
    rank: ov_dimension_t,
    dims: *mut ov_dimension_t,
}

/// `ov_version_t`.
#[allow(non_camel_case_types)]
#[repr(C)]
struct ov_version_t {
    build_number: *const c_char,
    description: *const c_char,
}

/// `ov_profiling_info_t`: one node's counters after an inference. The strings belong
/// to the list they came in.
#[allow(non_camel_case_types)]
#[repr(C)]
struct ov_profiling_info_t {
    /// `NOT_RUN`, `OPTIMIZED_OUT`, `EXECUTED` (a C enum: an int).
    status: c_int,
    /// Microseconds the node ran.
    real_time: i64,
    cpu_time: i64,
    node_name: *const c_char,
    exec_type: *const c_char,
    node_type: *const c_char,
}

/// `EXECUTED` of `ov_profiling_info_t::status`.
const EXECUTED: c_int = 2;

/// `ov_profiling_info_list_t`, freed with `ov_profiling_info_list_free`.
#[allow(non_camel_case_types)]
#[repr(C)]
struct ov_profiling_info_list_t {
    profiling_infos: *mut ov_profiling_info_t,
    size: usize,
}

/// `ov_callback_t`: what OpenVINO calls, on its own thread, when an asynchronous
/// inference ends (with no status: [`InferRequest::wait`] reads it). OpenVINO keeps
/// the address of this struct, not a copy: it must outlive the request.
#[repr(C)]
pub struct Callback {
    callback_func: unsafe extern "C" fn(*mut c_void),
    args: *mut c_void,
}

// SAFETY: `args` is only handed back to `callback_func`, whose caller guarantees it
// may be used from any thread (see [`InferRequest::set_callback`]).
unsafe impl Send for Callback {}

impl Callback {
    /// `f(args)`; `args` may be set later (see [`Callback::set_args`]).
    pub fn new(f: unsafe extern "C" fn(*mut c_void), args: *mut c_void) -> Callback {
        Callback {
            callback_func: f,
            args,
        }
    }

    pub fn set_args(&mut self, args: *mut c_void) {
        self.args = args;
    }
}

/// `OK` of `ov_status_e`.
const OK: c_int = 0;
/// `F32` of `ov_element_type_e`.
pub const F32: c_int = 4;
/// `I32` of `ov_element_type_e`.
pub const I32: c_int = 9;
/// `I64` of `ov_element_type_e`.
pub const I64: c_int = 10;

/// Declares the function table [`Api`]: one field per C function, named and typed as in
/// the headers. `ov_core_compile_model` is variadic and declared by hand.
macro_rules! c_api {
    ($( fn $name:ident($($arg:ty),* $(,)?) $(-> $ret:ty)?; )*) => {
        /// OpenVINO's C functions, resolved once from the library (see [`Api::open`]).
        pub struct Api {
            $( $name: unsafe extern "C" fn($($arg),*) $(-> $ret)?, )*
            ov_core_compile_model: unsafe extern "C" fn(
                *const ov_core_t,
                *const ov_model_t,
                *const c_char,
                usize,
                *mut *mut ov_compiled_model_t,
                ...
            ) -> c_int,
            /// Kept mapped for the life of the process (see [`Api::open`]).
            _lib: Library,
        }

        impl Api {
            fn resolve(lib: Library) -> Result<Api, String> {
                // SAFETY: each pointer is typed with the function's signature from the
                // headers; the library stays loaded in `_lib` while the table lives.
                unsafe {
                    Ok(Api {
                        $( $name: *lib.get(concat!(stringify!($name), "\0").as_bytes())
                            .map_err(|_| format!("it lacks {}", stringify!($name)))?, )*
                        ov_core_compile_model: *lib.get(b"ov_core_compile_model\0")
                            .map_err(|_| "it lacks ov_core_compile_model".to_string())?,
                        _lib: lib,
                    })
                }
            }
        }
    };
}

c_api! {
    fn ov_get_openvino_version(*mut ov_version_t) -> c_int;
    fn ov_version_free(*mut ov_version_t);
    fn ov_get_last_err_msg() -> *const c_char;
    fn ov_free(*const c_char);
    fn ov_core_create(*mut *mut ov_core_t) -> c_int;
    fn ov_core_free(*mut ov_core_t);
    fn ov_core_get_property(*const ov_core_t, *const c_char, *const c_char, *mut *mut c_char) -> c_int;
    fn ov_core_read_model(*const ov_core_t, *const c_char, *const c_char, *mut *mut ov_model_t) -> c_int;
    fn ov_model_free(*mut ov_model_t);
    fn ov_model_inputs_size(*const ov_model_t, *mut usize) -> c_int;
    fn ov_model_outputs_size(*const ov_model_t, *mut usize) -> c_int;
    fn ov_model_const_input(*const ov_model_t, *mut *mut ov_output_const_port_t) -> c_int;
    fn ov_model_const_output(*const ov_model_t, *mut *mut ov_output_const_port_t) -> c_int;
    fn ov_model_reshape_single_input(*const ov_model_t, ov_partial_shape_t) -> c_int;
    fn ov_port_get_any_name(*const ov_output_const_port_t, *mut *mut c_char) -> c_int;
    fn ov_port_get_partial_shape(*const ov_output_const_port_t, *mut ov_partial_shape_t) -> c_int;
    fn ov_port_get_element_type(*const ov_output_const_port_t, *mut c_int) -> c_int;
    fn ov_output_const_port_free(*mut ov_output_const_port_t);
    fn ov_partial_shape_create(i64, *const ov_dimension_t, *mut ov_partial_shape_t) -> c_int;
    fn ov_partial_shape_free(*mut ov_partial_shape_t);
    fn ov_compiled_model_create_infer_request(*const ov_compiled_model_t, *mut *mut ov_infer_request_t) -> c_int;
    fn ov_compiled_model_get_property(*const ov_compiled_model_t, *const c_char, *mut *mut c_char) -> c_int;
    fn ov_compiled_model_free(*mut ov_compiled_model_t);
    fn ov_infer_request_set_input_tensor(*mut ov_infer_request_t, *const ov_tensor_t) -> c_int;
    fn ov_infer_request_infer(*mut ov_infer_request_t) -> c_int;
    fn ov_infer_request_get_output_tensor(*const ov_infer_request_t, *mut *mut ov_tensor_t) -> c_int;
    fn ov_infer_request_free(*mut ov_infer_request_t);
    fn ov_infer_request_start_async(*mut ov_infer_request_t) -> c_int;
    fn ov_infer_request_wait(*mut ov_infer_request_t) -> c_int;
    fn ov_infer_request_cancel(*mut ov_infer_request_t) -> c_int;
    fn ov_infer_request_set_callback(*mut ov_infer_request_t, *const Callback) -> c_int;
    fn ov_infer_request_get_profiling_info(*mut ov_infer_request_t, *mut ov_profiling_info_list_t) -> c_int;
    fn ov_profiling_info_list_free(*mut ov_profiling_info_list_t);
    fn ov_shape_free(*mut ov_shape_t) -> c_int;
    fn ov_tensor_create_from_host_ptr(c_int, ov_shape_t, *mut c_void, *mut *mut ov_tensor_t) -> c_int;
    fn ov_tensor_get_shape(*const ov_tensor_t, *mut ov_shape_t) -> c_int;
    fn ov_tensor_get_element_type(*const ov_tensor_t, *mut c_int) -> c_int;
    fn ov_tensor_data(*const ov_tensor_t, *mut *mut c_void) -> c_int;
    fn ov_tensor_free(*mut ov_tensor_t);
}

impl Api {
    /// Loads `lib` (`libopenvino_c.so.*`) for good: `RTLD_NODELETE`, as the ONNX Runtime
    /// backend does, so that no plugin thread ever runs in unmapped code.
    pub fn open(lib: &Path) -> Result<Arc<Api>, String> {
        let flags = libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE;
        // SAFETY: loading runs the library's initialisers: it is the OpenVINO C library
        // the user (or setup) pointed at.
        let library = unsafe { Library::open(Some(lib), flags) }.map_err(|e| {
            format!(
                "it could not be loaded ({})",
                e.to_string().replace('\n', " ")
            )
        })?;
        Api::resolve(library).map(Arc::new)
    }

    /// OpenVINO's last error message (thread-local in the library), or a fallback.
    fn last_error(&self) -> String {
        // SAFETY: the library returns a pointer to its own static buffer, or null.
        let p = unsafe { (self.ov_get_last_err_msg)() };
        if p.is_null() {
            return "no message".into();
        }
        // SAFETY: non-null and NUL-terminated (the header's contract).
        let s = unsafe { CStr::from_ptr(p) }
            .to_string_lossy()
            .trim()
            .to_string();
        // The messages carry the C++ source location on their first lines; the cause
        // is the last non-empty line.
        s.lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("no message")
            .to_string()
    }

    /// Copies a string OpenVINO allocated and frees it with `ov_free`.
    ///
    /// # Safety
    /// `p` is null or a NUL-terminated string from an OpenVINO call documented to be
    /// freed with `ov_free`, not used after this call.
    unsafe fn take_string(&self, p: *mut c_char) -> Option<String> {
        if p.is_null() {
            return None;
        }
        let s = CStr::from_ptr(p).to_string_lossy().into_owned();
        (self.ov_free)(p);
        Some(s)
    }

    fn check(&self, status: c_int, what: &str) -> Result<(), String> {
        if status == OK {
            Ok(())
        } else {
            Err(format!("{what}: {} (status {status})", self.last_error()))
        }
    }

    /// The runtime's build number, e.g. `2026.4.1-22982-…`.
    pub fn version(&self) -> String {
        let mut v = ov_version_t {
            build_number: ptr::null(),
            description: ptr::null(),
        };
        // SAFETY: `v` is a valid out-parameter; freed below with the matching call.
        unsafe {
            if (self.ov_get_openvino_version)(&mut v) != OK || v.build_number.is_null() {
                return "unknown".into();
            }
            let s = CStr::from_ptr(v.build_number)
                .to_string_lossy()
                .into_owned();
            (self.ov_version_free)(&mut v);
            s
        }
    }
}

/// `ov_core_t`.
pub struct Core {
    api: Arc<Api>,
    raw: *mut ov_core_t,
}

// SAFETY: OpenVINO's Core is thread-safe; we only read models and compile through it.
unsafe impl Send for Core {}
unsafe impl Sync for Core {}

impl Drop for Core {
    fn drop(&mut self) {
        // SAFETY: made by ov_core_create, freed once.
        unsafe { (self.api.ov_core_free)(self.raw) }
    }
}

impl Core {
    pub fn new(api: &Arc<Api>) -> Result<Core, String> {
        let mut raw = ptr::null_mut();
        // SAFETY: out-parameter.
        api.check(
            unsafe { (api.ov_core_create)(&mut raw) },
            "creating the core",
        )?;
        Ok(Core {
            api: Arc::clone(api),
            raw,
        })
    }

    /// A property of `device` as text (e.g. `OPTIMIZATION_CAPABILITIES`).
    pub fn device_property(&self, device: &str, key: &str) -> Option<String> {
        let (d, k) = (CString::new(device).ok()?, CString::new(key).ok()?);
        let mut value = ptr::null_mut();
        // SAFETY: valid core and C strings; the value is OpenVINO's, freed by
        // `take_string` with `ov_free`.
        unsafe {
            if (self.api.ov_core_get_property)(self.raw, d.as_ptr(), k.as_ptr(), &mut value) != OK {
                return None;
            }
            self.api.take_string(value)
        }
    }

    /// Reads an ONNX or IR model (`.xml` finds its `.bin` beside it).
    pub fn read_model(&self, path: &Path) -> Result<Model, String> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| "the path holds a NUL byte".to_string())?;
        let mut raw = ptr::null_mut();
        // SAFETY: valid core and C string; null bin path (found beside an .xml).
        let status =
            unsafe { (self.api.ov_core_read_model)(self.raw, c.as_ptr(), ptr::null(), &mut raw) };
        self.api.check(status, "reading the model")?;
        Ok(Model {
            api: Arc::clone(&self.api),
            raw,
        })
    }

    /// Compiles `model` for `device` with `properties` (key, value) pairs.
    pub fn compile(
        &self,
        model: &Model,
        device: &str,
        properties: &[(&str, String)],
    ) -> Result<CompiledModel, String> {
        let dev = CString::new(device).map_err(|_| "bad device name".to_string())?;
        let strings: Vec<(CString, CString)> = properties
            .iter()
            .map(|(k, v)| {
                Ok((
                    CString::new(*k).map_err(|_| "bad property".to_string())?,
                    CString::new(v.as_str()).map_err(|_| "bad property".to_string())?,
                ))
            })
            .collect::<Result<_, String>>()?;
        let mut raw = ptr::null_mut();
        let f = self.api.ov_core_compile_model;
        let (c, m, d) = (
            self.raw as *const ov_core_t,
            model.raw as *const ov_model_t,
            dev.as_ptr(),
        );
        let arg = |i: usize, value: bool| -> *const c_char {
            if value {
                strings[i].1.as_ptr()
            } else {
                strings[i].0.as_ptr()
            }
        };
        // SAFETY: a variadic call with `2 × properties` C strings after the fixed
        // arguments, as the header specifies; the strings outlive the call.
        let status = unsafe {
            match strings.len() {
                0 => f(c, m, d, 0, &mut raw),
                1 => f(c, m, d, 2, &mut raw, arg(0, false), arg(0, true)),
                2 => f(
                    c,
                    m,
                    d,
                    4,
                    &mut raw,
                    arg(0, false),
                    arg(0, true),
                    arg(1, false),
                    arg(1, true),
                ),
                3 => f(
                    c,
                    m,
                    d,
                    6,
                    &mut raw,
                    arg(0, false),
                    arg(0, true),
                    arg(1, false),
                    arg(1, true),
                    arg(2, false),
                    arg(2, true),
                ),
                4 => f(
                    c,
                    m,
                    d,
                    8,
                    &mut raw,
                    arg(0, false),
                    arg(0, true),
                    arg(1, false),
                    arg(1, true),
                    arg(2, false),
                    arg(2, true),
                    arg(3, false),
                    arg(3, true),
                ),
                5 => f(
                    c,
                    m,
                    d,
                    10,
                    &mut raw,
                    arg(0, false),
                    arg(0, true),
                    arg(1, false),
                    arg(1, true),
                    arg(2, false),
                    arg(2, true),
                    arg(3, false),
                    arg(3, true),
                    arg(4, false),
                    arg(4, true),
                ),
                _ => return Err("at most five compile properties".into()),
            }
        };
        self.api
            .check(status, &format!("compiling the model for {device}"))?;
        Ok(CompiledModel {
            api: Arc::clone(&self.api),
            raw,
        })
    }
}

/// `ov_model_t`.
pub struct Model {
    api: Arc<Api>,
    raw: *mut ov_model_t,
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: made by ov_core_read_model, freed once.
        unsafe { (self.api.ov_model_free)(self.raw) }
    }
}

/// A port's name, element type (`ov_element_type_e`) and shape (`-1`: dynamic).
#[derive(Clone, Debug)]
pub struct PortInfo {
    pub name: String,
    pub element_type: c_int,
    pub dims: Vec<i64>,
}

impl Model {
    /// The numbers of inputs and outputs.
    pub fn arity(&self) -> Result<(usize, usize), String> {
        let (mut i, mut o) = (0usize, 0usize);
        // SAFETY: valid model, out-parameters.
        unsafe {
            self.api.check(
                (self.api.ov_model_inputs_size)(self.raw, &mut i),
                "counting inputs",
            )?;
            self.api.check(
                (self.api.ov_model_outputs_size)(self.raw, &mut o),
                "counting outputs",
            )?;
        }
        Ok((i, o))
    }

    /// The single input's (`input: true`) or single output's description.
    pub fn port(&self, input: bool) -> Result<PortInfo, String> {
        let api = &self.api;
        let mut port = ptr::null_mut();
        // SAFETY: valid model; the port is freed below.
        unsafe {
            let get = if input {
                api.ov_model_const_input
            } else {
                api.ov_model_const_output
            };
            api.check(get(self.raw, &mut port), "finding the model's port")?;
            let result = (|| {
                let mut name = ptr::null_mut();
                let name = match (api.ov_port_get_any_name)(port, &mut name) {
                    OK => api.take_string(name).unwrap_or_default(),
                    _ => String::new(),
                };
                let mut et: c_int = 0;
                api.check(
                    (api.ov_port_get_element_type)(port, &mut et),
                    "reading a port's type",
                )?;
                let mut ps = ov_partial_shape_t {
                    rank: ov_dimension_t { min: 0, max: 0 },
                    dims: ptr::null_mut(),
                };
                api.check(
                    (api.ov_port_get_partial_shape)(port, &mut ps),
                    "reading a port's shape",
                )?;
                let rank = ps.rank.max;
                let dims = if rank > 0 && !ps.dims.is_null() {
                    std::slice::from_raw_parts(ps.dims, rank as usize)
                        .iter()
                        .map(|d| if d.min == d.max { d.min } else { -1 })
                        .collect()
                } else {
                    Vec::new()
                };
                (api.ov_partial_shape_free)(&mut ps);
                Ok(PortInfo {
                    name,
                    element_type: et,
                    dims,
                })
            })();
            (api.ov_output_const_port_free)(port);
            result
        }
    }

    /// Gives the single input the static shape `dims`.
    pub fn reshape_input(&self, dims: &[i64]) -> Result<(), String> {
        let api = &self.api;
        let ds: Vec<ov_dimension_t> = dims
            .iter()
            .map(|&d| ov_dimension_t { min: d, max: d })
            .collect();
        let mut ps = ov_partial_shape_t {
            rank: ov_dimension_t { min: 0, max: 0 },
            dims: ptr::null_mut(),
        };
        // SAFETY: `ds` lives across the calls; the partial shape is freed after use.
        unsafe {
            api.check(
                (api.ov_partial_shape_create)(ds.len() as i64, ds.as_ptr(), &mut ps),
                "making a shape",
            )?;
            let status = (api.ov_model_reshape_single_input)(self.raw, ps);
            (api.ov_partial_shape_free)(&mut ps);
            api.check(status, "giving the input a static batch")
        }
    }
}

/// `ov_compiled_model_t`: shared by the workers, each of which makes its own request.
pub struct CompiledModel {
    api: Arc<Api>,
    raw: *mut ov_compiled_model_t,
}

// SAFETY: a compiled model is thread-safe for creating infer requests and reading
// properties (OpenVINO's documented contract).
unsafe impl Send for CompiledModel {}
unsafe impl Sync for CompiledModel {}

impl Drop for CompiledModel {
    fn drop(&mut self) {
        // SAFETY: made by ov_core_compile_model, freed once.
        unsafe { (self.api.ov_compiled_model_free)(self.raw) }
    }
}

impl CompiledModel {
    /// A property of the compiled model as text (e.g. `NUM_STREAMS`).
    pub fn property(&self, key: &str) -> Option<String> {
        let k = CString::new(key).ok()?;
        let mut value = ptr::null_mut();
        // SAFETY: valid model and key; the value is freed with ov_free.
        unsafe {
            if (self.api.ov_compiled_model_get_property)(self.raw, k.as_ptr(), &mut value) != OK {
                return None;
            }
            self.api.take_string(value)
        }
    }

    pub fn request(&self) -> Result<InferRequest, String> {
        let mut raw = ptr::null_mut();
        // SAFETY: valid compiled model, out-parameter.
        let status =
            unsafe { (self.api.ov_compiled_model_create_infer_request)(self.raw, &mut raw) };
        self.api.check(status, "creating an infer request")?;
        Ok(InferRequest {
            api: Arc::clone(&self.api),
            raw,
        })
    }
}

/// `ov_infer_request_t`: one worker's.
pub struct InferRequest {
    api: Arc<Api>,
    raw: *mut ov_infer_request_t,
}

// SAFETY: a request is used by one thread at a time (its worker); OpenVINO allows a
// request to move between threads.
unsafe impl Send for InferRequest {}

impl Drop for InferRequest {
    fn drop(&mut self) {
        // SAFETY: made by create_infer_request, freed once.
        unsafe { (self.api.ov_infer_request_free)(self.raw) }
    }
}

/// What an inference returned: the output's element type and values, copied out.
pub enum Output<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
    I32(&'a [i32]),
}

impl InferRequest {
    /// Makes `data`, shaped `dims`, this request's input for every later
    /// [`InferRequest::start`]: OpenVINO reads it in place during each inference.
    ///
    /// # Safety
    /// `data` must stay allocated, at the same address, and unwritten while an
    /// inference runs, for as long as the request lives.
    pub unsafe fn bind_input(&mut self, data: *mut f32, dims: &[i64]) -> Result<(), String> {
        let api = &self.api;
        let mut input = ptr::null_mut();
        let status = (api.ov_tensor_create_from_host_ptr)(
            F32,
            ov_shape_t {
                rank: dims.len() as i64,
                dims: dims.as_ptr() as *mut i64,
            },
            data.cast(),
            &mut input,
        );
        api.check(status, "wrapping the input")?;
        // The request keeps its own reference to the tensor; ours is freed.
        let set = api.check(
            (api.ov_infer_request_set_input_tensor)(self.raw, input),
            "setting the input",
        );
        (api.ov_tensor_free)(input);
        set
    }

    /// Has OpenVINO call `callback` when each asynchronous inference ends.
    ///
    /// # Safety
    /// `callback` must stay at its address, its `args` valid and its function safe to
    /// call with them from any thread, for as long as the request lives: OpenVINO
    /// keeps the struct's address.
    pub unsafe fn set_callback(&mut self, callback: *const Callback) -> Result<(), String> {
        self.api.check(
            (self.api.ov_infer_request_set_callback)(self.raw, callback),
            "setting the completion callback",
        )
    }

    /// Starts an inference on the bound input and returns at once.
    ///
    /// # Safety
    /// No other thread uses this request meanwhile, except [`InferRequest::cancel`].
    pub unsafe fn start(&self) -> Result<(), String> {
        self.api.check(
            (self.api.ov_infer_request_start_async)(self.raw),
            "starting an inference",
        )
    }

    /// Waits for the inference started last and returns its outcome, then checks that
    /// it left an output.
    ///
    /// # Safety
    /// As [`InferRequest::start`].
    pub unsafe fn wait(&self) -> Result<(), String> {
        let api = &self.api;
        api.check((api.ov_infer_request_wait)(self.raw), "inference")?;
        let mut out = ptr::null_mut();
        api.check(
            (api.ov_infer_request_get_output_tensor)(self.raw, &mut out),
            "reading the output",
        )?;
        let mut p = ptr::null_mut();
        let data = api.check((api.ov_tensor_data)(out, &mut p), "the output's data");
        (api.ov_tensor_free)(out);
        data.and_then(|()| {
            if p.is_null() {
                Err("the inference left no output".into())
            } else {
                Ok(())
            }
        })
    }

    /// Asks OpenVINO to give up the running inference; it still ends (and calls back)
    /// as a failed one. Safe from any thread while the request runs.
    pub fn cancel(&self) {
        // SAFETY: a live request; cancelling is OpenVINO's way to stop one from
        // another thread. A request that already ended ignores it.
        unsafe {
            (self.api.ov_infer_request_cancel)(self.raw);
        }
    }

    /// Adds the last inference's per-node counters (`PERF_COUNT` must have been set
    /// at compile time) to `totals`: the nodes that ran, by name, with their type and
    /// implementation.
    pub fn add_profile(&self, totals: &mut OpTotals) -> Result<(), String> {
        let api = &self.api;
        let mut list = ov_profiling_info_list_t {
            profiling_infos: ptr::null_mut(),
            size: 0,
        };
        // SAFETY: a valid request and out-parameter; the list (and the strings in it)
        // is read before it is freed once below.
        unsafe {
            api.check(
                (api.ov_infer_request_get_profiling_info)(self.raw, &mut list),
                "reading the performance counters",
            )?;
            if !list.profiling_infos.is_null() {
                let text = |p: *const c_char| {
                    if p.is_null() {
                        std::borrow::Cow::Borrowed("")
                    } else {
                        CStr::from_ptr(p).to_string_lossy()
                    }
                };
                for info in std::slice::from_raw_parts(list.profiling_infos, list.size) {
                    if info.status != EXECUTED {
                        continue;
                    }
                    totals.add(
                        &text(info.node_name),
                        &text(info.node_type),
                        Some(&text(info.exec_type)),
                        info.real_time as f64,
                    );
                }
            }
            (api.ov_profiling_info_list_free)(&mut list);
        }
        totals.inferences += 1;
        Ok(())
    }

    /// Runs the request synchronously on its bound input ([`InferRequest::bind_input`])
    /// and hands the output to `read` while the output tensor is alive. The input stays
    /// bound from one inference to the next, as benchmark_app's do: setting a new input
    /// tensor per query cost OpenVINO's CPU plugin ~10 % of a 6-ms ResNet-50.
    pub fn infer<R>(&mut self, read: impl FnOnce(Output<'_>) -> R) -> Result<R, String> {
        let api = &self.api;
        // SAFETY: a live request with its input bound; the output tensor is freed on
        // every path below, after `read` has seen its data.
        unsafe {
            api.check((api.ov_infer_request_infer)(self.raw), "inference")?;
            let mut out = ptr::null_mut();
            api.check(
                (api.ov_infer_request_get_output_tensor)(self.raw, &mut out),
                "reading the output",
            )?;
            let read_out = (|| {
                let mut et: c_int = 0;
                api.check(
                    (api.ov_tensor_get_element_type)(out, &mut et),
                    "the output's type",
                )?;
                let mut oshape = ov_shape_t {
                    rank: 0,
                    dims: ptr::null_mut(),
                };
                api.check(
                    (api.ov_tensor_get_shape)(out, &mut oshape),
                    "the output's shape",
                )?;
                let n: i64 = if oshape.rank > 0 && !oshape.dims.is_null() {
                    std::slice::from_raw_parts(oshape.dims, oshape.rank as usize)
                        .iter()
                        .product()
                } else {
                    0
                };
                (api.ov_shape_free)(&mut oshape);
                let mut p = ptr::null_mut();
                api.check((api.ov_tensor_data)(out, &mut p), "the output's data")?;
                let n = n.max(0) as usize;
                Ok(match et {
                    F32 => read(Output::F32(std::slice::from_raw_parts(p as *const f32, n))),
                    I64 => read(Output::I64(std::slice::from_raw_parts(p as *const i64, n))),
                    I32 => read(Output::I32(std::slice::from_raw_parts(p as *const i32, n))),
                    other => {
                        return Err(format!(
                            "an output of element type {other}, not float32 or int"
                        ))
                    }
                })
            })();
            (api.ov_tensor_free)(out);
            read_out
        }
    }
}
