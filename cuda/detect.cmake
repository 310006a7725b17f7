# cuda/detect.cmake - decides whether the CUDA backend (cuda/) is built and
# enables the CUDA language; included by the top-level CMakeLists.txt,
# because a language must be enabled at the top level.
#
#   PRISM_CUDA=AUTO (default): build it whenever nvcc (and cuBLAS) is found
#   PRISM_CUDA=ON:   fail the configure step when they are not
#   PRISM_CUDA=OFF:  never build it
#
# Architectures: sm_80 and sm_90 unless CMAKE_CUDA_ARCHITECTURES is given
# (tools/gpu/device_check.sh passes 90 to halve compile time on an H100).
# Sets PRISM_HAVE_CUDA.
set(PRISM_CUDA AUTO CACHE STRING "Build the CUDA backend: AUTO (when nvcc is found), ON or OFF")
set_property(CACHE PRISM_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${PRISM_CUDA}" _prism_cuda_mode)
set(PRISM_HAVE_CUDA OFF)

if(_prism_cuda_mode STREQUAL "OFF")
  message(STATUS "CUDA backend: off (PRISM_CUDA=OFF)")
else()
  # nvcc is often installed outside PATH; look in the usual place as well.
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(_prism_nvcc nvcc)
    if(NOT _prism_nvcc AND EXISTS /usr/local/cuda/bin/nvcc)
      set(ENV{CUDACXX} /usr/local/cuda/bin/nvcc)
    endif()
  endif()
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit)
    if(CUDAToolkit_FOUND AND TARGET CUDA::cudart AND TARGET CUDA::cublas AND TARGET CUDA::cublasLt)
      set(PRISM_HAVE_CUDA ON)
      message(STATUS "CUDA backend: on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                     "architectures ${CMAKE_CUDA_ARCHITECTURES})")
    elseif(_prism_cuda_mode STREQUAL "ON")
      message(FATAL_ERROR "PRISM_CUDA=ON: nvcc was found but not the CUDA toolkit's "
                          "cudart/cuBLAS/cuBLASLt libraries")
    else()
      message(STATUS "CUDA backend: off (nvcc found, cuBLAS/cuBLASLt not)")
    endif()
  elseif(_prism_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "PRISM_CUDA=ON but no CUDA compiler (nvcc) was found; "
                        "set CUDACXX or CMAKE_CUDA_COMPILER")
  else()
    message(STATUS "CUDA backend: off (no nvcc found)")
  endif()
endif()
