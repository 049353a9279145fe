//! Caller-owned NumPy arrays seen through the buffer protocol: checked once for type, size,
//! contiguity and writability, then written or read with no copy, with the GIL released.

use pyo3::buffer::{Element, PyBuffer};
use pyo3::prelude::*;

use crate::python::errors::ConfigError;

/// A mutable view of a C-contiguous NumPy array, checked for type, size and writability.
pub(crate) struct RawMut<T> {
    ptr: *mut T,
    pub(crate) len: usize,
    _view: PyBuffer<T>,
}

// The view pins the array; the GIL is released only while we write into it.
unsafe impl<T: Element> Send for RawMut<T> {}

impl<T: Element> RawMut<T> {
    pub(crate) fn new(obj: &PyAny, len: usize, name: &str) -> PyResult<Self> {
        let view = PyBuffer::<T>::get(obj)
            .map_err(|e| ConfigError::new_err(format!("{name}: wrong array type ({e})")))?;
        if view.readonly() || !view.is_c_contiguous() || view.item_count() != len {
            return Err(ConfigError::new_err(format!(
                "{name} must be a writable C-contiguous array of {len} elements"
            )));
        }
        Ok(Self { ptr: view.buf_ptr() as *mut T, len, _view: view })
    }

    /// Refuses two outputs that share memory.
    pub(crate) fn check_apart_from<U: Element>(&self, other: &RawMut<U>) -> PyResult<()> {
        let (a, b) = (self.ptr as usize, other.ptr as usize);
        let (a_end, b_end) = (a + self.len * size_of::<T>(), b + other.len * size_of::<U>());
        if a < b_end && b < a_end {
            return Err(ConfigError::new_err("the outputs must not share memory"));
        }
        Ok(())
    }

    pub(crate) fn slice(&mut self) -> &mut [T] {
        // Safety: checked writable, contiguous and of `len` items of T; the view keeps the
        // array alive for our lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// A read-only view of a C-contiguous NumPy array, checked for type.
pub(crate) struct RawRef<T> {
    ptr: *const T,
    pub(crate) len: usize,
    _view: PyBuffer<T>,
}

// The view pins the array; the GIL is released only while we read it.
unsafe impl<T: Element> Send for RawRef<T> {}

impl<T: Element> RawRef<T> {
    pub(crate) fn new(obj: &PyAny, name: &str, dtype: &str) -> PyResult<Self> {
        let view = PyBuffer::<T>::get(obj)
            .map_err(|_| ConfigError::new_err(format!("{name} must be a {dtype} array")))?;
        if !view.is_c_contiguous() {
            return Err(ConfigError::new_err(format!("{name} must be C-contiguous")));
        }
        Ok(Self { ptr: view.buf_ptr() as *const T, len: view.item_count(), _view: view })
    }

    pub(crate) fn slice(&self) -> &[T] {
        // Safety: checked contiguous, of `len` items of T; the view keeps the array alive.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Refuses an output array that shares memory with this input: Rust may not read a
    /// buffer while writing it (e.g. a view of the observations passed as the output).
    pub(crate) fn check_apart<U: Element>(&self, out: &RawMut<U>, what: &str) -> PyResult<()> {
        let (a, b) = (self.ptr as usize, out.ptr as usize);
        let (a_end, b_end) = (a + self.len * size_of::<T>(), b + out.len * size_of::<U>());
        if a < b_end && b < a_end {
            return Err(ConfigError::new_err(format!("{what} must not share memory with the inputs")));
        }
        Ok(())
    }
}
