// The tenant live stream (SSE): reconnects and catches up with Last-Event-ID.
"use strict";
