//! Phase 6, validate: the IR must pass [`Ir::validate`] (every reference resolves, no
//! duplicate names: a failure is a bug of the earlier phases, checked in debug builds; the
//! snapshot builder, `xds::resources`, checks again before anything is served), and the errors are sorted by origin and
//! deduplicated, so the order in which phases found them does not matter.

use crate::ir::Ir;

use super::{Errors, Translation};

pub(crate) fn validate(ir: Ir, errs: Errors) -> Translation {
    debug_assert_eq!(ir.validate(), Ok(()), "translation produced an invalid IR");
    let mut errors = errs.0;
    errors.sort();
    errors.dedup();
    Translation { ir, errors }
}
