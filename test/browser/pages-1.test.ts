// Part 1 of the every-page browser checks (page-checks.ts has the checks, pages.ts the list).
import { checkPages } from './page-checks.js'

checkPages(0)
