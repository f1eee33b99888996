"""The scheduler room: unattended runs of tasks (APScheduler 3.x), calendars, schedule definitions.

`definition` (the YAML models), `calendar` (Dutch working days), `triggers` (fire times on
working days), `state` (fire history, pause flags, run-now requests in klerk's database),
`fires` (starting a fire's run, never two of one task at once), `notify` (e-mail, webhook),
`service` (`klerk serve`).
"""
