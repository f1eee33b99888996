"""The scheduler room: unattended runs of tasks (APScheduler 3.x), calendars, schedule definitions.

Empty in the walking skeleton; the scheduler issue fills it.
"""
