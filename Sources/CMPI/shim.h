// OpenMPI defines its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, ...) as casts of
// global addresses, which Swift cannot import. These inline getters give them to Swift:
// CMPI_GETTER(T, name, VALUE) defines `static inline T cmpi_name(void) { return VALUE; }`.
#pragma once
#include <mpi.h>

#define CMPI_GETTER(type, name, value) \
  static inline type cmpi_##name(void) { return value; }

CMPI_GETTER(MPI_Comm, comm_world, MPI_COMM_WORLD)
CMPI_GETTER(MPI_Comm, comm_null, MPI_COMM_NULL)
CMPI_GETTER(MPI_Datatype, float, MPI_FLOAT)
CMPI_GETTER(MPI_Datatype, double, MPI_DOUBLE)
CMPI_GETTER(MPI_Datatype, int32, MPI_INT32_T)
CMPI_GETTER(MPI_Datatype, int64, MPI_INT64_T)
CMPI_GETTER(MPI_Datatype, byte, MPI_BYTE)
CMPI_GETTER(MPI_Op, op_sum, MPI_SUM)
CMPI_GETTER(MPI_Op, op_max, MPI_MAX)
CMPI_GETTER(MPI_Op, op_min, MPI_MIN)
CMPI_GETTER(void *, in_place, MPI_IN_PLACE)
CMPI_GETTER(MPI_Status *, status_ignore, MPI_STATUS_IGNORE)
CMPI_GETTER(MPI_Request, request_null, MPI_REQUEST_NULL)
CMPI_GETTER(int, comm_type_shared, MPI_COMM_TYPE_SHARED)
CMPI_GETTER(MPI_Info, info_null, MPI_INFO_NULL)
CMPI_GETTER(int, thread_funneled, MPI_THREAD_FUNNELED)
CMPI_GETTER(int, success, MPI_SUCCESS)
CMPI_GETTER(int, ident, MPI_IDENT)
