//! A no-argument C method of a Python type (confluent-kafka's `Message.topic()` and kin),
//! resolved once per batch and then called straight through its C function pointer.
//!
//! `push_kafka` makes six such calls per message. `m.call_method0("offset")` looks the name
//! up in the type's method cache and dispatches through vectorcall every time; a profile of
//! the daemon put that lookup and dispatch at about 4 % of its main thread. The direct call
//! does what CPython's own `method_vectorcall_NOARGS` does after its lookup: check the
//! object's exact type, guard the C recursion depth, call `meth(self, NULL)`. Anything that is
//! not exactly a built-in `METH_NOARGS` method of the object's type falls back to the generic
//! call, so a subclass or a Python-level override behaves as Python would run it.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};

pub struct NoArgsMethod<'py> {
    name: Bound<'py, PyString>,
    /// The type it was resolved on, and the C function: `None` when the generic call is used.
    direct: Option<(*mut ffi::PyTypeObject, ffi::PyCFunction)>,
}

impl<'py> NoArgsMethod<'py> {
    /// `name` on `ty`: direct when `ty.name` is a built-in method descriptor of `ty` taking
    /// no arguments.
    pub fn resolve(ty: &Bound<'py, PyType>, name: &Bound<'py, PyString>) -> Self {
        let direct = ty.getattr(name).ok().and_then(|descr| {
            // SAFETY: the descriptor's type is checked before it is read as a
            // PyMethodDescrObject; both objects are kept alive by the type's dict and `ty`.
            unsafe {
                let d = descr.as_ptr();
                if ffi::Py_TYPE(d) != &raw mut ffi::PyMethodDescr_Type {
                    return None;
                }
                let d = d.cast::<ffi::PyMethodDescrObject>();
                if (*d).d_common.d_type != ty.as_type_ptr() {
                    return None;
                }
                let def = (*d).d_method;
                let flags = (*def).ml_flags;
                let plain_noargs = flags & !ffi::METH_COEXIST == ffi::METH_NOARGS;
                plain_noargs.then(|| (ty.as_type_ptr(), (*def).ml_meth.PyCFunction))
            }
        });
        NoArgsMethod {
            name: name.clone(),
            direct,
        }
    }

    /// `obj.name()`.
    #[inline]
    pub fn call(&self, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        match self.direct {
            // SAFETY: `obj` is exactly of the type the function is a method of (what
            // method_vectorcall_NOARGS checks); METH_NOARGS functions take (self, NULL) and
            // return a new reference or NULL with an exception set.
            Some((ty, meth)) if unsafe { ffi::Py_TYPE(obj.as_ptr()) } == ty => unsafe {
                if ffi::Py_EnterRecursiveCall(c" while calling a Python object".as_ptr()) != 0 {
                    return Err(PyErr::fetch(obj.py()));
                }
                let out = meth(obj.as_ptr(), std::ptr::null_mut());
                ffi::Py_LeaveRecursiveCall();
                Bound::from_owned_ptr_or_err(obj.py(), out)
            },
            _ => obj.call_method0(&self.name),
        }
    }
}
