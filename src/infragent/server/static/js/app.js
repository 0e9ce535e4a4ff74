// InfrAgent dashboard behaviour: no inline scripts (the CSP forbids them).
"use strict";
