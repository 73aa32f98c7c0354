/* Stand-in for DCMTK's dcmtk/ofstd/ofexport.h, which jmorecfg12.h includes for its export macros.
 * On Linux DCMTK defines both empty (no __declspec; default visibility), so the declarations are
 * the same as DCMTK's own build sees them. Found before any installed DCMTK header because
 * quoted includes search the including file's directory first. */
#ifndef OFEXPORT_H
#define OFEXPORT_H
#define DCMTK_DECL_EXPORT
#define DCMTK_DECL_IMPORT
#endif
