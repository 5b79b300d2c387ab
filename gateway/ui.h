/*
 * ui.h - the dashboard page (GET /ui): gateway/ui/index.html, compiled in
 * as bytes by the Makefile (build/gen/ui_page.c), so the binary needs no
 * file at run time and the page no other host.
 */
#ifndef SLUICE_UI_H
#define SLUICE_UI_H

#include <stddef.h>

extern const unsigned char gw_ui_page[];
extern const size_t gw_ui_page_len;

#endif
