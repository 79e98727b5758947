#ifndef FEDREC_COPENBLAS_SHIM_H
#define FEDREC_COPENBLAS_SHIM_H
// OpenBLAS's CBLAS interface (Debian: libopenblas-dev; pkg-config name `openblas`).
#include <cblas.h>
#endif
