# Installs the service files of contrib/, run by `cmake --install` (and so
# `make install`) through install(SCRIPT). The paths inside the unit (the
# binary, the config file) follow the prefix of this install, which
# `cmake --install --prefix P` may set to another than the configured one.
# DESTDIR applies to every file(INSTALL), not to the paths in the unit.
#
# In: MDHT_SRC, MDHT_BUILD, MDHT_BINDIR, MDHT_SYSCONFDIR, MDHT_DATADIR
# (GNUInstallDirs' values, relative to the prefix or absolute).
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(IS_ABSOLUTE "${MDHT_BINDIR}")
  set(bindir "${MDHT_BINDIR}")
else()
  set(bindir "${prefix}/${MDHT_BINDIR}")
endif()
# GNUInstallDirs' rule: prefix /usr keeps its configuration in /etc.
if(IS_ABSOLUTE "${MDHT_SYSCONFDIR}")
  set(etc "${MDHT_SYSCONFDIR}")
elseif(prefix STREQUAL "/usr")
  set(etc "/etc")
else()
  set(etc "${prefix}/${MDHT_SYSCONFDIR}")
endif()
if(IS_ABSOLUTE "${MDHT_DATADIR}")
  set(datadir "${MDHT_DATADIR}")
else()
  set(datadir "${prefix}/${MDHT_DATADIR}")
endif()

file(READ "${MDHT_SRC}/contrib/mdht.service" unit)
string(REPLACE "ExecStart=/usr/bin/mdht " "ExecStart=${bindir}/mdht " unit
  "${unit}")
string(REPLACE "/etc/mdht/mdht.conf" "${etc}/mdht/mdht.conf" unit "${unit}")
# A name of its own: two installs from one build may run at once (the
# tests do), each with its prefix.
string(RANDOM LENGTH 12 tag)
set(tmpunit "${MDHT_BUILD}/contrib/mdht.service.${tag}")
file(WRITE "${tmpunit}" "${unit}")
# systemd reads units from ${prefix}/lib/systemd/system for /usr and
# /usr/local alike.
file(INSTALL "${tmpunit}" DESTINATION "${prefix}/lib/systemd/system"
  RENAME mdht.service)
file(REMOVE "${tmpunit}")

file(INSTALL "${MDHT_SRC}/contrib/mdht.bash-completion"
  DESTINATION "${datadir}/bash-completion/completions"
  RENAME mdht)

# The example, always; as the live config only when there is none yet: an
# install must not overwrite what the operator edited.
file(INSTALL "${MDHT_SRC}/contrib/mdht.conf"
  DESTINATION "${datadir}/doc/mdht")
if(EXISTS "$ENV{DESTDIR}${etc}/mdht/mdht.conf")
  message(STATUS "Kept: $ENV{DESTDIR}${etc}/mdht/mdht.conf")
else()
  file(INSTALL "${MDHT_SRC}/contrib/mdht.conf" DESTINATION "${etc}/mdht")
endif()
