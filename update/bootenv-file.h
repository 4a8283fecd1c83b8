/* The file backend for simulated nodes: the variables as a JSON object of strings. */
#pragma once

#include "update/bootenv-backend.h"

/* "file": a JSON file at config->path, ORBIT_* variables (the GRUB names). */
extern const struct bootenv_ops bootenv_file_ops;
