from django.contrib.admin.options import InlineModelAdmin

from common.money import format_money_display


class NoDeleteAdminMixin:
    """Financial records are never deleted from the admin."""

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class ReadOnlyInlineMixin:
    """Inline rows shown for the record's story, never added, edited or deleted from the admin."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def money_column(name: str, label: str | None = None):
    """An admin column / read-only field showing `name` formatted in its row's currency ("$14,300.00",
    "¥14,300") through the shared babel formatter, instead of the raw "14300.0000"."""
    def show(obj):
        value = getattr(obj, name, None)
        if value is None or value == "":
            return "-"
        currency = getattr(obj, "currency", None)
        for parent in ("invoice", "credit_note", "payment"):  # lines carry their document's currency
            currency = currency or getattr(getattr(obj, parent, None), "currency", None)
        return format_money_display(value, currency) if currency else str(value)

    show.__name__ = f"{name}_money"
    show.short_description = label or name.replace("_", " ")
    show.admin_order_field = name
    return show


class MoneyAdminMixin:
    """Formats the money fields named in `money_fields` in the list and on the record's page (read
    only there). The add form (no record yet) keeps its editable inputs."""

    money_fields: tuple[str, ...] = ()

    def _money_columns(self) -> dict:
        # One callable per field for the admin's lifetime: Django matches read-only fields by identity.
        cached = self.__dict__.get("_money_cache")
        if cached is None:
            model_fields = {f.name: f for f in self.model._meta.fields}
            cached = {name: money_column(name, str(model_fields[name].verbose_name) if name in model_fields else None)
                      for name in self.money_fields}
            self._money_cache = cached
        return cached

    def _map(self, names):
        columns = self._money_columns()
        return [columns.get(n, n) if isinstance(n, str) else n for n in names]

    def get_list_display(self, request):
        return self._map(super().get_list_display(request))

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return self._map(fields) if self._record_page(obj) else fields

    def _record_page(self, obj) -> bool:
        return obj is not None or isinstance(self, InlineModelAdmin)  # an inline's obj is its parent

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return self._map(fields) if self._record_page(obj) else fields

    def get_exclude(self, request, obj=None):
        exclude = super().get_exclude(request, obj)
        if not self._record_page(obj):
            return exclude
        return [*(exclude or ()), *self.money_fields]

