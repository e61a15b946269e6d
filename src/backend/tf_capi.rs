//! `tf_capi`: the part of TensorFlow's C API (`tensorflow/c/c_api.h`) that the `tf`
//! backend calls, resolved at run time from `libtensorflow.so` with `libloading`, and
//! small owning wrappers that free what they hold when dropped.
//!
//! The declarations are written from the public header, for the ~35 functions used:
//! import a frozen GraphDef, look up operations and their output types and shapes, make
//! sessions with a serialized `ConfigProto`, list their devices, and run a step with
//! dense float32 / int32 / int64 tensors. C enums (`TF_DataType`, `TF_Code`) travel
//! as `int`.
//!
//! Ownership follows c_api.h: whatever a `TF_New*` / `TF_Allocate*` call returns, and
//! the tensors `TF_SessionRun` fetches, belong to the caller, who frees them with the
//! matching `TF_Delete*`. Operations belong to their graph: an [`Operation`] holds its
//! graph alive, and so does a [`Session`] (TF counts a graph's sessions too).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::marker::PhantomData;
use std::path::Path;
use std::ptr;
use std::sync::Arc;

use libloading::os::unix::Library;

// ---------------------------------------------------------------------------------
// C declarations
// ---------------------------------------------------------------------------------

/// Declares opaque C structs, used only behind pointers.
macro_rules! opaque {
    ($($name:ident),* $(,)?) => {
        $(
            #[allow(non_camel_case_types)]
            #[repr(C)]
            struct $name {
                _private: [u8; 0],
            }
        )*
    };
}

opaque!(
    TF_Status,
    TF_Graph,
    TF_ImportGraphDefOptions,
    TF_Operation,
    TF_SessionOptions,
    TF_Session,
    TF_DeviceList,
    TF_Tensor,
);

/// `TF_Buffer`: bytes TensorFlow hands over (a step's run metadata), read in place and
/// freed with `TF_DeleteBuffer`.
#[allow(non_camel_case_types)]
#[repr(C)]
struct TF_Buffer {
    data: *const c_void,
    length: usize,
    data_deallocator: Option<unsafe extern "C" fn(*mut c_void, usize)>,
}

/// One output of an operation (`TF_Output`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy)]
struct TF_Output {
    oper: *mut TF_Operation,
    index: c_int,
}

/// `TF_OK`.
const TF_OK: c_int = 0;

/// Declares the function table [`Api`] and its loader: one field per C function,
/// named and typed as in c_api.h.
macro_rules! c_api {
    ($( fn $name:ident($($arg:ty),* $(,)?) $(-> $ret:ty)?; )*) => {
        /// TensorFlow's C functions, resolved once from the library (see [`Api::open`]).
        #[allow(non_snake_case)]
        pub struct Api {
            $( $name: unsafe extern "C" fn($($arg),*) $(-> $ret)?, )*
        }

        impl Api {
            /// Resolves every function, or names the first one the library lacks.
            fn resolve(lib: &Library) -> Result<Api, String> {
                Ok(Api {
                    $( $name: {
                        // SAFETY: the pointer is typed with the function's signature
                        // from c_api.h, as declared in this table.
                        let sym = unsafe {
                            lib.get::<unsafe extern "C" fn($($arg),*) $(-> $ret)?>(
                                stringify!($name),
                            )
                        };
                        *sym.map_err(|_| {
                            format!("it does not export {}", stringify!($name))
                        })?
                    }, )*
                })
            }
        }
    };
}

c_api! {
    fn TF_Version() -> *const c_char;

    fn TF_NewStatus() -> *mut TF_Status;
    fn TF_DeleteStatus(*mut TF_Status);
    fn TF_GetCode(*const TF_Status) -> c_int;
    fn TF_Message(*const TF_Status) -> *const c_char;

    fn TF_NewBufferFromString(*const c_void, usize) -> *mut TF_Buffer;
    fn TF_NewBuffer() -> *mut TF_Buffer;
    fn TF_DeleteBuffer(*mut TF_Buffer);

    fn TF_NewGraph() -> *mut TF_Graph;
    fn TF_DeleteGraph(*mut TF_Graph);
    fn TF_NewImportGraphDefOptions() -> *mut TF_ImportGraphDefOptions;
    fn TF_DeleteImportGraphDefOptions(*mut TF_ImportGraphDefOptions);
    fn TF_GraphImportGraphDef(
        *mut TF_Graph,
        *const TF_Buffer,
        *const TF_ImportGraphDefOptions,
        *mut TF_Status,
    );
    fn TF_GraphNextOperation(*mut TF_Graph, *mut usize) -> *mut TF_Operation;
    fn TF_GraphOperationByName(*mut TF_Graph, *const c_char) -> *mut TF_Operation;
    fn TF_GraphGetTensorNumDims(*mut TF_Graph, TF_Output, *mut TF_Status) -> c_int;
    fn TF_GraphGetTensorShape(*mut TF_Graph, TF_Output, *mut i64, c_int, *mut TF_Status);

    fn TF_OperationName(*mut TF_Operation) -> *const c_char;
    fn TF_OperationOpType(*mut TF_Operation) -> *const c_char;
    fn TF_OperationNumOutputs(*mut TF_Operation) -> c_int;
    fn TF_OperationOutputType(TF_Output) -> c_int;

    fn TF_NewSessionOptions() -> *mut TF_SessionOptions;
    fn TF_SetConfig(*mut TF_SessionOptions, *const c_void, usize, *mut TF_Status);
    fn TF_DeleteSessionOptions(*mut TF_SessionOptions);
    fn TF_NewSession(*mut TF_Graph, *const TF_SessionOptions, *mut TF_Status) -> *mut TF_Session;
    fn TF_CloseSession(*mut TF_Session, *mut TF_Status);
    fn TF_DeleteSession(*mut TF_Session, *mut TF_Status);
    fn TF_SessionRun(
        *mut TF_Session,
        *const TF_Buffer,
        *const TF_Output,
        *const *mut TF_Tensor,
        c_int,
        *const TF_Output,
        *mut *mut TF_Tensor,
        c_int,
        *const *const TF_Operation,
        c_int,
        *mut TF_Buffer,
        *mut TF_Status,
    );
    fn TF_SessionListDevices(*mut TF_Session, *mut TF_Status) -> *mut TF_DeviceList;
    fn TF_DeviceListCount(*const TF_DeviceList) -> c_int;
    fn TF_DeviceListType(*const TF_DeviceList, c_int, *mut TF_Status) -> *const c_char;
    fn TF_DeleteDeviceList(*mut TF_DeviceList);

    fn TF_AllocateTensor(c_int, *const i64, c_int, usize) -> *mut TF_Tensor;
    fn TF_DeleteTensor(*mut TF_Tensor);
    fn TF_TensorType(*const TF_Tensor) -> c_int;
    fn TF_NumDims(*const TF_Tensor) -> c_int;
    fn TF_Dim(*const TF_Tensor, c_int) -> i64;
    fn TF_TensorByteSize(*const TF_Tensor) -> usize;
    fn TF_TensorData(*const TF_Tensor) -> *mut c_void;
}

impl Api {
    /// Opens the library at `path` for the rest of the process and resolves the
    /// functions. Call it once per process (the caller keeps the result): the library
    /// is never closed, since TF starts threads and registers exit handlers that must
    /// not outlive its code. The error is the loader's reason, or the missing function.
    pub fn open(path: &Path) -> Result<&'static Api, String> {
        // The flags `libloading::Library::new` uses (lazy binding, symbols kept local);
        // the library finds libtensorflow_framework.so.2 beside it through its RUNPATH.
        let flags = libc::RTLD_LAZY | libc::RTLD_LOCAL;
        // SAFETY: loading runs the library's initialisers. It is the TensorFlow C
        // library found by the backend's discovery (TENSORFLOW_DIR or the venv).
        let lib = unsafe { Library::open(Some(path), flags) }.map_err(|e| {
            let reason = std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string());
            reason.replace('\n', " ")
        })?;
        let api = Api::resolve(&lib);
        // Never closed, resolved or not (see above): the pointers in `Api` stay valid.
        std::mem::forget(lib);
        Ok(Box::leak(Box::new(api?)))
    }

    /// `TF_Version()`: the library's version, e.g. `2.21.0`.
    pub fn version(&self) -> Result<String, std::str::Utf8Error> {
        // SAFETY: TF_Version takes nothing and returns a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr((self.TF_Version)()) };
        v.to_str().map(str::to_string)
    }
}

// ---------------------------------------------------------------------------------
// Errors and data types
// ---------------------------------------------------------------------------------

/// A failed C call: TF's status code and message, shown as `InvalidArgument: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: c_int,
    message: String,
}

impl Error {
    /// An error of ours, with TF's `INVALID_ARGUMENT` code.
    fn invalid(message: impl Into<String>) -> Error {
        Error {
            code: 3,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const CODES: [&str; 17] = [
            "Ok",
            "Cancelled",
            "Unknown",
            "InvalidArgument",
            "DeadlineExceeded",
            "NotFound",
            "AlreadyExists",
            "PermissionDenied",
            "ResourceExhausted",
            "FailedPrecondition",
            "Aborted",
            "OutOfRange",
            "Unimplemented",
            "Internal",
            "Unavailable",
            "DataLoss",
            "Unauthenticated",
        ];
        match usize::try_from(self.code).ok().and_then(|c| CODES.get(c)) {
            Some(name) => write!(f, "{name}: {}", self.message),
            None => write!(f, "code {}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for Error {}

/// A `TF_Status`, freed on drop.
struct Status {
    api: &'static Api,
    ptr: *mut TF_Status,
}

impl Status {
    fn new(api: &'static Api) -> Status {
        // SAFETY: TF_NewStatus takes nothing and returns a new status (OK) that we own.
        let ptr = unsafe { (api.TF_NewStatus)() };
        Status { api, ptr }
    }

    /// `Ok` if the last call that took this status succeeded, else its code and message.
    fn check(&self) -> Result<(), Error> {
        // SAFETY: `ptr` is a live status of ours; TF_Message's string lives as long as
        // the status and is copied out before it can change.
        let (code, message) = unsafe {
            let code = (self.api.TF_GetCode)(self.ptr);
            if code == TF_OK {
                return Ok(());
            }
            let msg = (self.api.TF_Message)(self.ptr);
            let message = if msg.is_null() {
                String::new()
            } else {
                CStr::from_ptr(msg).to_string_lossy().into_owned()
            };
            (code, message)
        };
        Err(Error { code, message })
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from TF_NewStatus and is freed once, here.
        unsafe { (self.api.TF_DeleteStatus)(self.ptr) }
    }
}

/// A tensor element type (`TF_DataType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataType(c_int);

impl DataType {
    pub const FLOAT: DataType = DataType(1);
    pub const INT32: DataType = DataType(3);
    pub const INT64: DataType = DataType(9);
}

impl std::fmt::Display for DataType {
    /// TF's own names (`tf.float32`'s `float32`), `type N` for one it does not know.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            1 => "float32",
            2 => "float64",
            3 => "int32",
            4 => "uint8",
            5 => "int16",
            6 => "int8",
            7 => "string",
            8 => "complex64",
            9 => "int64",
            10 => "bool",
            11 => "qint8",
            12 => "quint8",
            13 => "qint32",
            14 => "bfloat16",
            15 => "qint16",
            16 => "quint16",
            17 => "uint16",
            18 => "complex128",
            19 => "float16",
            20 => "resource",
            21 => "variant",
            22 => "uint32",
            23 => "uint64",
            other => return write!(f, "type {other}"),
        };
        f.write_str(name)
    }
}

/// The element types a [`Tensor`] can be read or written as.
pub trait Element: Copy + sealed::Sealed {
    const DTYPE: DataType;
}

impl Element for f32 {
    const DTYPE: DataType = DataType::FLOAT;
}
impl Element for i32 {
    const DTYPE: DataType = DataType::INT32;
}
impl Element for i64 {
    const DTYPE: DataType = DataType::INT64;
}

mod sealed {
    /// Only the plain numbers above: any bit pattern is a valid value of each.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
}

// ---------------------------------------------------------------------------------
// Graphs and operations
// ---------------------------------------------------------------------------------

/// The owned `TF_Graph`, shared by the [`Graph`], its [`Operation`]s and [`Session`]s.
struct GraphHandle {
    api: &'static Api,
    ptr: *mut TF_Graph,
}

// SAFETY: a TF_Graph has no tie to the thread that made it, and TF guards its state
// with the graph's own mutex in every function used here (import, look-ups, shapes,
// making sessions), so the handle may move between threads and be used from several.
unsafe impl Send for GraphHandle {}
// SAFETY: see `Send` above: concurrent calls on one graph lock its mutex.
unsafe impl Sync for GraphHandle {}

impl Drop for GraphHandle {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from TF_NewGraph and is freed once, here, when the last
        // Graph, Operation or Session holding it is gone.
        unsafe { (self.api.TF_DeleteGraph)(self.ptr) }
    }
}

/// A TensorFlow graph.
pub struct Graph {
    inner: Arc<GraphHandle>,
}

impl Graph {
    pub fn new(api: &'static Api) -> Graph {
        // SAFETY: TF_NewGraph takes nothing and returns a new empty graph that we own.
        let ptr = unsafe { (api.TF_NewGraph)() };
        Graph {
            inner: Arc::new(GraphHandle { api, ptr }),
        }
    }

    /// Adds the operations of a serialized `GraphDef` (TF_GraphImportGraphDef).
    pub fn import_graph_def(&mut self, graph_def: &[u8]) -> Result<(), Error> {
        let api = self.inner.api;
        let status = Status::new(api);
        // SAFETY: the buffer copies `graph_def` (TF_NewBufferFromString), the options
        // are new defaults, and both are freed here after the call, which only reads
        // them; the graph and status are live objects of ours.
        unsafe {
            let buffer = (api.TF_NewBufferFromString)(graph_def.as_ptr().cast(), graph_def.len());
            let options = (api.TF_NewImportGraphDefOptions)();
            (api.TF_GraphImportGraphDef)(self.inner.ptr, buffer, options, status.ptr);
            (api.TF_DeleteImportGraphDefOptions)(options);
            (api.TF_DeleteBuffer)(buffer);
        }
        status.check()
    }

    /// Every operation, in the graph's order.
    pub fn operations(&self) -> Vec<Operation> {
        let mut ops = Vec::new();
        let mut pos: usize = 0;
        loop {
            // SAFETY: the graph is live and `pos` is the cursor TF_GraphNextOperation
            // started at 0 and advances itself.
            let op = unsafe { (self.inner.api.TF_GraphNextOperation)(self.inner.ptr, &mut pos) };
            if op.is_null() {
                return ops;
            }
            ops.push(self.operation(op));
        }
    }

    /// The operation called `name`, if any.
    pub fn operation_by_name(&self, name: &str) -> Option<Operation> {
        let name = CString::new(name).ok()?;
        // SAFETY: the graph is live and `name` is NUL-terminated for the call.
        let op = unsafe { (self.inner.api.TF_GraphOperationByName)(self.inner.ptr, name.as_ptr()) };
        (!op.is_null()).then(|| self.operation(op))
    }

    /// The static shape of `op`'s output `index`: `None` per unknown dim, `None` for an
    /// unknown rank, an operation of another graph or an output it does not have.
    pub fn tensor_dims(&self, op: &Operation, index: usize) -> Option<Vec<Option<i64>>> {
        if !Arc::ptr_eq(&op.graph, &self.inner) {
            return None;
        }
        let output = op.output(index)?;
        let api = self.inner.api;
        let status = Status::new(api);
        // SAFETY: the graph is live, `output` is an existing output of one of its
        // operations (checked by `op.output`), and the status is ours.
        let rank = unsafe { (api.TF_GraphGetTensorNumDims)(self.inner.ptr, output, status.ptr) };
        status.check().ok()?;
        let len = usize::try_from(rank).ok()?;
        let mut dims = vec![0i64; len];
        // SAFETY: as above, and `dims` holds exactly `rank` values for TF to write.
        unsafe {
            (api.TF_GraphGetTensorShape)(
                self.inner.ptr,
                output,
                dims.as_mut_ptr(),
                rank,
                status.ptr,
            )
        };
        status.check().ok()?;
        Some(dims.into_iter().map(|d| (d >= 0).then_some(d)).collect())
    }

    fn operation(&self, ptr: *mut TF_Operation) -> Operation {
        Operation {
            ptr,
            graph: Arc::clone(&self.inner),
        }
    }
}

/// An operation of a [`Graph`]; it keeps the graph alive.
#[derive(Clone)]
pub struct Operation {
    ptr: *mut TF_Operation,
    graph: Arc<GraphHandle>,
}

// SAFETY: a TF_Operation is a node owned by its graph (kept alive by `graph`); the
// functions used on it read its name, type and outputs, which do not change once the
// node is in the graph, so it may be used from any thread, and from several at once.
unsafe impl Send for Operation {}
// SAFETY: see `Send` above.
unsafe impl Sync for Operation {}

impl Operation {
    /// The operation's name, `None` if it is not UTF-8.
    pub fn name(&self) -> Option<&str> {
        // SAFETY: the operation is live (its graph is held); the name is a
        // NUL-terminated string owned by the node, which lives as long as `self`.
        unsafe { CStr::from_ptr((self.graph.api.TF_OperationName)(self.ptr)) }
            .to_str()
            .ok()
    }

    /// The operation's type (`Placeholder`, `ArgMax`, ...), `None` if it is not UTF-8.
    pub fn op_type(&self) -> Option<&str> {
        // SAFETY: as in `name`.
        unsafe { CStr::from_ptr((self.graph.api.TF_OperationOpType)(self.ptr)) }
            .to_str()
            .ok()
    }

    pub fn num_outputs(&self) -> usize {
        // SAFETY: the operation is live (its graph is held).
        let n = unsafe { (self.graph.api.TF_OperationNumOutputs)(self.ptr) };
        usize::try_from(n).unwrap_or(0)
    }

    /// The element type of output `index`, `None` if the operation has no such output.
    pub fn output_type(&self, index: usize) -> Option<DataType> {
        let output = self.output(index)?;
        // SAFETY: `output` is an existing output of this live operation.
        Some(DataType(unsafe {
            (self.graph.api.TF_OperationOutputType)(output)
        }))
    }

    /// Output `index` as a `TF_Output`, only if the operation has it: TF does not check
    /// the index itself.
    fn output(&self, index: usize) -> Option<TF_Output> {
        (index < self.num_outputs()).then_some(TF_Output {
            oper: self.ptr,
            index: index as c_int,
        })
    }
}

// ---------------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------------

/// A dense `TF_Tensor` of ours, freed on drop.
pub struct Tensor {
    api: &'static Api,
    ptr: *mut TF_Tensor,
}

// SAFETY: a TF_Tensor is a plain buffer with a shape, tied to no thread; this owner
// is its only handle on our side (not `Sync`: `data_mut` writes through `&mut self`).
unsafe impl Send for Tensor {}

impl Tensor {
    /// A zero-filled tensor of `T` with the given dims; `None` if its size overflows
    /// or TF cannot allocate it.
    pub fn new<T: Element>(api: &'static Api, dims: &[u64]) -> Option<Tensor> {
        let dims: Vec<i64> = dims
            .iter()
            .map(|&d| i64::try_from(d).ok())
            .collect::<Option<_>>()?;
        let count = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))?;
        let bytes = count.checked_mul(std::mem::size_of::<T>())?;
        let rank = c_int::try_from(dims.len()).ok()?;
        // SAFETY: `dims` holds `rank` values and `bytes` is the size of a dense tensor
        // of that shape; the tensor returned is ours.
        let ptr = unsafe { (api.TF_AllocateTensor)(T::DTYPE.0, dims.as_ptr(), rank, bytes) };
        if ptr.is_null() {
            return None;
        }
        let tensor = Tensor { api, ptr };
        // SAFETY: the tensor is live and its data holds `TF_TensorByteSize` bytes;
        // zeroed, every element is a valid 0 before any slice of it is made.
        unsafe {
            let data = (api.TF_TensorData)(ptr);
            if !data.is_null() {
                ptr::write_bytes(data.cast::<u8>(), 0, (api.TF_TensorByteSize)(ptr));
            }
        }
        Some(tensor)
    }

    pub fn dtype(&self) -> DataType {
        // SAFETY: the tensor is live.
        DataType(unsafe { (self.api.TF_TensorType)(self.ptr) })
    }

    /// The size of dimension `i`, `None` past the rank.
    pub fn dim(&self, i: usize) -> Option<u64> {
        // SAFETY: the tensor is live.
        let rank = unsafe { (self.api.TF_NumDims)(self.ptr) };
        let i = c_int::try_from(i).ok().filter(|&i| i < rank)?;
        // SAFETY: the tensor is live and `i` is below its rank (TF does not check).
        u64::try_from(unsafe { (self.api.TF_Dim)(self.ptr, i) }).ok()
    }

    /// The elements, if the tensor holds `T`.
    pub fn data<T: Element>(&self) -> Result<&[T], Error> {
        let (data, len) = self.raw::<T>()?;
        if len == 0 {
            return Ok(&[]);
        }
        // SAFETY: `raw` checked that the data is non-null, aligned for T and holds
        // `len` elements of T; they are initialised (zeroed at `new`, or written by TF)
        // and live as long as the borrow of `self`.
        Ok(unsafe { std::slice::from_raw_parts(data, len) })
    }

    /// The elements, writable, if the tensor holds `T`.
    pub fn data_mut<T: Element>(&mut self) -> Result<&mut [T], Error> {
        let (data, len) = self.raw::<T>()?;
        if len == 0 {
            return Ok(&mut []);
        }
        // SAFETY: as in `data`; `&mut self` makes this the only access through us, and
        // no fetched tensor that could share the buffer outlives a run's borrow of it
        // (see `Session::run`).
        Ok(unsafe { std::slice::from_raw_parts_mut(data, len) })
    }

    /// The data pointer and element count, checked for `T`.
    fn raw<T: Element>(&self) -> Result<(*mut T, usize), Error> {
        let dtype = self.dtype();
        if dtype != T::DTYPE {
            return Err(Error::invalid(format!(
                "the tensor holds {dtype}, not {}",
                T::DTYPE
            )));
        }
        // SAFETY: the tensor is live.
        let (data, bytes) = unsafe {
            (
                (self.api.TF_TensorData)(self.ptr).cast::<T>(),
                (self.api.TF_TensorByteSize)(self.ptr),
            )
        };
        let len = bytes / std::mem::size_of::<T>();
        if len > 0 && (data.is_null() || !data.is_aligned()) {
            return Err(Error::invalid(format!(
                "the tensor's {dtype} data is not aligned for reading"
            )));
        }
        Ok((data, len))
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        // SAFETY: `ptr` is a tensor we own (allocated, or fetched by a run) and is
        // freed once, here.
        unsafe { (self.api.TF_DeleteTensor)(self.ptr) }
    }
}

/// A tensor fetched by [`Session::run`]. It borrows the fed tensors: TF may hand back
/// a fed buffer itself (fetching what was fed), so the feeds stay unwritable while it
/// lives.
pub struct Fetched<'t> {
    tensor: Tensor,
    _feeds: PhantomData<&'t Tensor>,
}

impl std::ops::Deref for Fetched<'_> {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.tensor
    }
}

// ---------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------

/// `TF_SessionOptions`, freed on drop.
pub struct SessionOptions {
    api: &'static Api,
    ptr: *mut TF_SessionOptions,
}

impl SessionOptions {
    pub fn new(api: &'static Api) -> SessionOptions {
        // SAFETY: TF_NewSessionOptions takes nothing and returns defaults that we own.
        let ptr = unsafe { (api.TF_NewSessionOptions)() };
        SessionOptions { api, ptr }
    }

    /// Sets a serialized `ConfigProto` (TF_SetConfig).
    pub fn set_config(&mut self, config: &[u8]) -> Result<(), Error> {
        let status = Status::new(self.api);
        // SAFETY: the options and status are live objects of ours; TF parses `config`
        // during the call and keeps nothing of it.
        unsafe {
            (self.api.TF_SetConfig)(self.ptr, config.as_ptr().cast(), config.len(), status.ptr)
        };
        status.check()
    }
}

impl Drop for SessionOptions {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from TF_NewSessionOptions and is freed once, here.
        unsafe { (self.api.TF_DeleteSessionOptions)(self.ptr) }
    }
}

/// A session over a [`Graph`], closed and freed on drop.
pub struct Session {
    api: &'static Api,
    ptr: *mut TF_Session,
    /// The session's graph, kept alive for the operations a run names.
    graph: Arc<GraphHandle>,
}

// SAFETY: a session may run steps from several threads at once: TF_SessionRun calls
// the C++ `Session::Run`, and tensorflow/core/public/session.h says "A Session allows
// concurrent calls to Run()" (TF_SessionRun's graph extension before a run takes the
// graph's mutex). That is how shared-session workers use it, through `&self`; listing
// devices only reads it. Close, which must follow every run, happens only in `Drop`,
// when no other thread holds the session.
unsafe impl Send for Session {}
// SAFETY: see `Send` above.
unsafe impl Sync for Session {}

impl Session {
    /// A new session over `graph` (TF_NewSession).
    pub fn new(options: &SessionOptions, graph: &Graph) -> Result<Session, Error> {
        let api = graph.inner.api;
        let status = Status::new(api);
        // SAFETY: graph, options and status are live objects of ours; TF copies what it
        // needs of the options and counts the graph's sessions itself.
        let ptr = unsafe { (api.TF_NewSession)(graph.inner.ptr, options.ptr, status.ptr) };
        status.check()?;
        if ptr.is_null() {
            return Err(Error::invalid("TF_NewSession returned no session"));
        }
        Ok(Session {
            api,
            ptr,
            graph: Arc::clone(&graph.inner),
        })
    }

    /// The type of each device the session sees (`CPU`, `GPU`, ...).
    pub fn device_types(&self) -> Result<Vec<String>, Error> {
        let status = Status::new(self.api);
        // SAFETY: the session and status are live; the list returned is ours.
        let list = unsafe { (self.api.TF_SessionListDevices)(self.ptr, status.ptr) };
        status.check()?;
        if list.is_null() {
            return Ok(Vec::new());
        }
        let mut types = Vec::new();
        // SAFETY: `list` is live until TF_DeleteDeviceList at the end; each index is
        // below its count, and each type string (owned by the list) is copied out.
        let result = unsafe {
            let n = (self.api.TF_DeviceListCount)(list);
            (0..n).try_for_each(|i| {
                let t = (self.api.TF_DeviceListType)(list, i, status.ptr);
                status.check()?;
                if !t.is_null() {
                    types.push(CStr::from_ptr(t).to_string_lossy().into_owned());
                }
                Ok(())
            })
        };
        // SAFETY: the list came from TF_SessionListDevices and is freed once, here.
        unsafe { (self.api.TF_DeleteDeviceList)(list) };
        result.map(|()| types)
    }

    /// One step: feeds each `(operation, output, tensor)`, returns the tensors of
    /// `fetches` in order. Thread-safe (`&self`). The operations must be of this
    /// session's graph and have the outputs named; TF checks the tensors' types and
    /// shapes and says what is wrong.
    pub fn run<'t>(
        &self,
        feeds: &[(&Operation, usize, &'t Tensor)],
        fetches: &[(&Operation, usize)],
    ) -> Result<Vec<Fetched<'t>>, Error> {
        self.run_with(feeds, fetches, None)
    }

    /// [`Session::run`] with serialized `RunOptions` (`trace.0`), writing the step's
    /// serialized `RunMetadata` into `trace.1`.
    pub fn run_traced<'t>(
        &self,
        feeds: &[(&Operation, usize, &'t Tensor)],
        fetches: &[(&Operation, usize)],
        trace: (&[u8], &mut Vec<u8>),
    ) -> Result<Vec<Fetched<'t>>, Error> {
        self.run_with(feeds, fetches, Some(trace))
    }

    fn run_with<'t>(
        &self,
        feeds: &[(&Operation, usize, &'t Tensor)],
        fetches: &[(&Operation, usize)],
        trace: Option<(&[u8], &mut Vec<u8>)>,
    ) -> Result<Vec<Fetched<'t>>, Error> {
        let output = |op: &Operation, index: usize| {
            if !Arc::ptr_eq(&op.graph, &self.graph) {
                return Err(Error::invalid(
                    "an operation of another graph was given to a session",
                ));
            }
            op.output(index).ok_or_else(|| {
                Error::invalid(format!(
                    "{}:{index} is not an output of the graph",
                    op.name().unwrap_or("?")
                ))
            })
        };
        let inputs: Vec<TF_Output> = feeds
            .iter()
            .map(|(op, i, _)| output(op, *i))
            .collect::<Result<_, _>>()?;
        let values: Vec<*mut TF_Tensor> = feeds.iter().map(|(_, _, t)| t.ptr).collect();
        let outputs: Vec<TF_Output> = fetches
            .iter()
            .map(|(op, i)| output(op, *i))
            .collect::<Result<_, _>>()?;
        let mut fetched: Vec<*mut TF_Tensor> = vec![ptr::null_mut(); outputs.len()];
        let count = |n: usize| c_int::try_from(n).map_err(|_| Error::invalid("too many tensors"));
        let (n_in, n_out) = (count(inputs.len())?, count(outputs.len())?);
        let status = Status::new(self.api);
        // SAFETY: the buffers are made here and freed below, once; TF copies nothing
        // out of the options buffer after the call and fills the metadata buffer with
        // bytes of its own, which are read before it is freed.
        let (options, metadata) = match &trace {
            Some((opts, _)) => unsafe {
                (
                    (self.api.TF_NewBufferFromString)(opts.as_ptr().cast(), opts.len()),
                    (self.api.TF_NewBuffer)(),
                )
            },
            None => (ptr::null_mut(), ptr::null_mut()),
        };
        // SAFETY: the session and status are live; `inputs` / `values` and `outputs` /
        // `fetched` hold `n_in` and `n_out` entries, every TF_Output is checked above,
        // and the fed tensors are live and only read during the run (TF does not take
        // them over). No targets; run options and metadata only when traced.
        unsafe {
            (self.api.TF_SessionRun)(
                self.ptr,
                options,
                inputs.as_ptr(),
                values.as_ptr(),
                n_in,
                outputs.as_ptr(),
                fetched.as_mut_ptr(),
                n_out,
                ptr::null(),
                0,
                metadata,
                status.ptr,
            )
        };
        if let Some((_, out)) = trace {
            out.clear();
            // SAFETY: both buffers came from TF_New* above; the metadata's bytes are
            // TF's, `length` long, and copied out before the buffer is freed.
            unsafe {
                let m = &*metadata;
                if !m.data.is_null() {
                    out.extend_from_slice(std::slice::from_raw_parts(
                        m.data.cast::<u8>(),
                        m.length,
                    ));
                }
                (self.api.TF_DeleteBuffer)(metadata);
                (self.api.TF_DeleteBuffer)(options);
            }
        }
        // Whatever TF handed back is ours to free, error or not.
        let tensors: Vec<Option<Fetched<'t>>> = fetched
            .into_iter()
            .map(|ptr| {
                (!ptr.is_null()).then(|| Fetched {
                    tensor: Tensor { api: self.api, ptr },
                    _feeds: PhantomData,
                })
            })
            .collect();
        status.check()?;
        tensors
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::invalid("TF_SessionRun returned no tensor for a fetch"))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let status = Status::new(self.api);
        // SAFETY: `ptr` came from TF_NewSession and is closed and freed once, here; a
        // failure to close leaves nothing to do but free it.
        unsafe {
            (self.api.TF_CloseSession)(self.ptr, status.ptr);
            (self.api.TF_DeleteSession)(self.ptr, status.ptr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_tensorflows() {
        let e = Error {
            code: 3,
            message: "Invalid GraphDef".into(),
        };
        assert_eq!(e.to_string(), "InvalidArgument: Invalid GraphDef");
        let e = Error {
            code: 99,
            message: "odd".into(),
        };
        assert_eq!(e.to_string(), "code 99: odd");
    }

    #[test]
    fn data_types_use_tensorflows_names() {
        assert_eq!(DataType::FLOAT.to_string(), "float32");
        assert_eq!(DataType::INT64.to_string(), "int64");
        assert_eq!(DataType(7).to_string(), "string");
        assert_eq!(DataType(42).to_string(), "type 42");
    }
}
