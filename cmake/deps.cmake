# Finds each C dependency with pkg-config. A missing one stops the configure
# step with the Debian package that provides it, so the fix is one apt-get.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config")
endif()

function(mh_require_pkg target module debian_pkg)
  pkg_check_modules(${target} QUIET IMPORTED_TARGET ${module})
  if(NOT ${target}_FOUND)
    message(FATAL_ERROR
      "missing dependency '${module}' (pkg-config). On Debian 12: apt-get install ${debian_pkg}")
  endif()
  message(STATUS "found ${module} ${${target}_VERSION}")
endfunction()

mh_require_pkg(MH_JANSSON jansson libjansson-dev)
mh_require_pkg(MH_CRYPTO libcrypto libssl-dev)
mh_require_pkg(MH_SSL openssl libssl-dev)
mh_require_pkg(MH_LWS libwebsockets libwebsockets-dev)
mh_require_pkg(MH_UV libuv libuv1-dev)
mh_require_pkg(MH_HIREDIS hiredis libhiredis-dev)
mh_require_pkg(MH_JWT libjwt libjwt-dev)
mh_require_pkg(MH_CMOCKA cmocka libcmocka-dev)
