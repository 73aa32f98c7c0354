#include <stdlib.h>
#include "ccodecs.h"

void ccodecs_free(void *p) { free(p); }
