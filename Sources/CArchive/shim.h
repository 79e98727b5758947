#ifndef FEDREC_CARCHIVE_SHIM_H
#define FEDREC_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#endif
