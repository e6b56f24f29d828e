/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tiermm: memory and page-table placement on NUMA and tiered-memory machines. */
#ifndef TIERMM_H
#define TIERMM_H

#include <tiermm/version.h>
#include <tiermm/common.h>
#include <tiermm/caps.h>
#include <tiermm/topo.h>
#include <tiermm/place.h>
#include <tiermm/pt.h>
#include <tiermm/runtime.h>

#endif /* TIERMM_H */
