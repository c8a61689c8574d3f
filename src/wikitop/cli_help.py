"""The help pages of the ``wikitop`` command: examples first, options under headings.

A command made with ``HelpCommand`` (a group with ``HelpGroup``) takes ``examples``, pairs of
a command line and what it does, shown right after its one-line summary, and ``aliases``,
other names its group accepts for it. An option made with ``grouped_option(heading)`` is
listed under that heading, the others under "Options", first. Every environment variable an
option reads shows in its help.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

OWN_OPTIONS = "Options"
# Listed last, with --help at its end; --help goes with a command's own options when it has none.
LOGGING = "Logging"


class GroupedOption(click.Option):
    """An option listed under the heading ``group``."""

    def __init__(self, *args, group: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group


def grouped_option(group: str) -> Callable[..., Callable]:
    """``click.option`` for options listed under the heading ``group``."""
    return functools.partial(click.option, cls=GroupedOption, group=group)


class HelpFormatting:
    """What HelpCommand and HelpGroup add to click's commands and groups."""

    def __init__(self, *args, examples: Sequence[tuple[str, str]] = (), aliases: Sequence[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.examples = list(examples)
        self.aliases = tuple(aliases)
        for param in self.params:
            if isinstance(param, click.Option) and param.envvar:
                param.show_envvar = True

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        summary, _, details = inspect.cleandoc(self.help or "").partition("\n\n")
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(summary)
        if self.examples:
            formatter.write_paragraph()
            with formatter.indentation():
                self.format_examples(formatter)
        if details:
            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text(details)

    def format_examples(self, formatter: click.HelpFormatter) -> None:
        """The examples as they are, never wrapped, so that they can be copied."""
        formatter.write_text("Examples:")
        with formatter.indentation():
            for line, what in self.examples:
                formatter.write(f"{'':>{formatter.current_indent}}{line}  # {what}\n")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {OWN_OPTIONS: []}
        for param in self.params:
            record = param.get_help_record(ctx)
            if record is not None and isinstance(param, click.Option):
                sections.setdefault(getattr(param, "group", OWN_OPTIONS), []).append(record)
        if LOGGING in sections:
            sections[LOGGING] = sections.pop(LOGGING)
        help_option = self.get_help_option(ctx)
        if help_option is not None:
            sections[LOGGING if LOGGING in sections else OWN_OPTIONS].append(help_option.get_help_record(ctx))
        for heading, records in sections.items():
            if records:
                with formatter.section(heading):
                    formatter.write_dl(records)


class HelpCommand(HelpFormatting, click.Command):
    pass


class HelpGroup(HelpFormatting, click.Group):
    """A group whose commands and subgroups are HelpCommands and HelpGroups, found by name or alias."""

    command_class = HelpCommand
    group_class = type  # subgroups of this class

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            command = next((c for c in self.commands.values() if cmd_name in getattr(c, "aliases", ())), None)
        return command

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's list of commands, each with its aliases after its name: "list (ls)"."""
        commands = {name: self.get_command(ctx, name) for name in self.list_commands(ctx)}
        names = {name: name + (f" ({', '.join(command.aliases)})" if getattr(command, "aliases", ()) else "")
                 for name, command in commands.items() if command is not None and not command.hidden}
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names.values())
        with formatter.section("Commands"):
            formatter.write_dl([(shown, commands[name].get_short_help_str(limit)) for name, shown in names.items()])
