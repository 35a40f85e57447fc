#include "app.h"

#include <GLFW/glfw3.h>
#include <fmt/format.h>
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <thread>

#include "gguf/error.h"
#include "gguf/render.h"
#include "plots.h"
#include "quant/imatrix.h"
#include "quant/quant.h"
#include "viewer/document.h"

namespace viewer::ui {

namespace {

constexpr const char* kPanelNames[] = {"overview", "metadata", "tensors", "values", "heatmap", "error", "mix", "importance"};

bool is_detail(Panel p) { return p == Panel::Values || p == Panel::HeatMap || p == Panel::Error || p == Panel::Importance; }

// Threads for the worker's computations: all cores but one, which stays with the window.
int worker_threads() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) - 1); }

// A unit of bytes (1024^k) in which `largest` is below 1024, and its name.
std::pair<double, const char*> byte_unit(uint64_t largest) {
    static constexpr const char* names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double unit = 1;
    size_t k = 0;
    while (static_cast<double>(largest) >= unit * 1024 && k + 1 < std::size(names)) {
        unit *= 1024;
        ++k;
    }
    return {unit, names[k]};
}

void copy_to(char* dst, size_t size, const std::string& s) {
    std::snprintf(dst, size, "%s", s.c_str());
}

// Types one can quantize to, for the error view's list.
const std::vector<gguf::TypeId>& target_types() {
    static const std::vector<gguf::TypeId> types = [] {
        std::vector<gguf::TypeId> out;
        for (const gguf::TypeInfo& t : gguf::all_types())
            if (!t.retired && quant::can_quantize(t.id)) out.push_back(t.id);
        return out;
    }();
    return types;
}

// The items of a tab bar: `tab` begins one (and says whether it is shown), the view draws.
struct View {
    const char* label;
    Panel panel;
    std::function<void()> draw;
};
template <class Tab>
void draw_views(Tab&& tab, std::initializer_list<View> views) {
    for (const View& v : views)
        if (tab(v.label, v.panel)) {
            v.draw();
            ImGui::EndTabItem();
        }
}

void help_marker(const char* text) {
    ImGui::SameLine();
    ImGui::TextDisabled("(?)");
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", text);
}

// One row of figures under their headers.
void figure_row(const char* id, std::initializer_list<const char*> headers, std::initializer_list<std::string> values) {
    if (!ImGui::BeginTable(id, static_cast<int>(headers.size()), ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) return;
    for (const char* h : headers) ImGui::TableSetupColumn(h);
    ImGui::TableHeadersRow();
    ImGui::TableNextRow();
    for (const std::string& text : values) {
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(text.c_str());
    }
    ImGui::EndTable();
}

// A key/value row of a two-column table.
void fact_row(const char* label, const std::string& value) {
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    ImGui::TextDisabled("%s", label);
    ImGui::TableNextColumn();
    ImGui::TextUnformatted(value.c_str());
}

}  // namespace

std::optional<Panel> panel_from_name(std::string_view name) {
    for (size_t i = 0; i < std::size(kPanelNames); ++i)
        if (name == kPanelNames[i]) return static_cast<Panel>(i);
    return std::nullopt;
}

const char* panel_name(Panel p) { return kPanelNames[static_cast<size_t>(p)]; }

// ---- one open file ---------------------------------------------------------------------

struct App::DocTab {
    uint64_t id = 0;
    std::string path, title;
    std::shared_ptr<Document> doc;  // null when the file did not open
    std::string error;              // why it did not

    Panel view = Panel::Overview;
    bool view_requested = false;    // bring `view` forward next frame
    Panel detail = Panel::Values;   // the tensor tab's view
    bool detail_requested = false;

    char meta_query[256] = {};
    std::string meta_query_done = "\x01";
    std::vector<uint32_t> meta_rows;
    std::map<uint32_t, std::vector<gguf::Value>> arrays;  // expanded arrays, by key index
    std::optional<Vocabulary> vocab;
    bool vocab_read = false;

    char tensor_filter[256] = {};
    std::string tensor_filter_done = "\x01";
    TensorColumn sort_column = TensorColumn::Index;
    bool ascending = true;
    bool sort_changed = true;
    bool group_layers = false;
    std::vector<uint32_t> tensor_rows;
    std::optional<uint32_t> selected;
    bool scroll_to_selected = false;

    gguf::TypeId error_type = gguf::TypeId::Q4_K;
    char imatrix_input[1024] = {};
    std::shared_ptr<quant::ImportanceMatrix> imatrix;
    std::string imatrix_path, imatrix_error;
    char compare_input[1024] = {};
    std::shared_ptr<Document> compare;
    std::string compare_error;
    bool use_compare = false;

    std::string imatrix_loading;  // the worker's key while a matrix is being read
    std::string imatrix_loading_path;
    std::optional<uint32_t> importance_tensor;  // what importance_values and _top are of
    std::shared_ptr<quant::ImportanceMatrix> importance_of;
    std::vector<float> importance_values;
    std::vector<ColumnImportance> importance_top;
    std::string importance_error;

    int mix_colour = 0;  // 0 type, 1 bits per weight, 2 error
    bool compute_mix = false;  // request the error of every cell at the next drawing

    GLuint texture = 0;
    std::string texture_key;
    int texture_w = 0, texture_h = 0;
    double heat_lo = 0, heat_hi = 0;

    ~DocTab() {
        if (texture) glDeleteTextures(1, &texture);
    }
    std::string key_prefix() const { return fmt::format("{}|{}", id, path); }
};

App::App(const StartOptions& o, std::filesystem::path recent_store) : recent_(std::move(recent_store)) {
    log_counts_ = o.log_counts;
    std::error_code ec;
    browser_dir_ = std::filesystem::current_path(ec);
    for (const std::string& f : o.files) open(f);
    if (docs_.empty()) return;
    DocTab& d = *docs_.front();
    if (!d.doc) {
        startup_errors_.push_back(d.error);
        return;
    }
    if (!o.error_type.empty()) {
        const auto t = gguf::type_from_name(o.error_type);
        if (!t || std::find(target_types().begin(), target_types().end(), *t) == target_types().end())
            startup_errors_.push_back(fmt::format("--error-type {}: not a type one can quantize to", o.error_type));
        else
            d.error_type = *t;
    }
    if (!o.imatrix.empty()) {
        copy_to(d.imatrix_input, sizeof d.imatrix_input, o.imatrix);
        try {
            d.imatrix = std::make_shared<quant::ImportanceMatrix>(quant::ImportanceMatrix::load(o.imatrix));
            d.imatrix_path = o.imatrix;
        } catch (const std::exception& e) {
            startup_errors_.push_back(e.what());
        }
    }
    if (!o.compare.empty()) {
        copy_to(d.compare_input, sizeof d.compare_input, o.compare);
        try {
            d.compare = Document::open(o.compare);
            d.use_compare = true;
        } catch (const std::exception& e) {
            startup_errors_.push_back(e.what());
        }
    }
    if (!o.mix_colour.empty()) {
        static constexpr const char* kColourings[] = {"type", "bits", "error"};
        const auto it = std::find(std::begin(kColourings), std::end(kColourings), o.mix_colour);
        if (it == std::end(kColourings))
            startup_errors_.push_back(fmt::format("--mix-colour {}: expected type, bits or error", o.mix_colour));
        else
            d.mix_colour = static_cast<int>(it - std::begin(kColourings));
        d.compute_mix = d.mix_colour == 2;
    }
    if (!o.select.empty()) {
        if (const TensorRow* r = d.doc->find(o.select))
            select_tensor(d, r->index, o.panel && is_detail(*o.panel) ? o.panel : std::optional<Panel>(Panel::Values));
        else
            startup_errors_.push_back(fmt::format("{}: no tensor named {}", d.path, o.select));
    }
    if (o.panel && !is_detail(*o.panel)) {
        d.view = *o.panel;
        d.view_requested = true;
    } else if (o.panel && o.select.empty()) {
        startup_errors_.push_back(fmt::format("--panel {} needs --select TENSOR", panel_name(*o.panel)));
    }
    select_tab_ = 0;
}

App::~App() { worker_.cancel_all(); }

void App::open(const std::string& path) {
    static uint64_t next_id = 1;
    auto d = std::make_unique<DocTab>();
    d->id = next_id++;
    d->path = path;
    d->title = std::filesystem::path(path).filename().string();
    try {
        d->doc = Document::open(path);
        recent_.add(path);
    } catch (const std::exception& e) {
        d->error = e.what();
    }
    docs_.push_back(std::move(d));
    select_tab_ = static_cast<int>(docs_.size()) - 1;
}

void App::close_tab(size_t index) {
    DocTab& d = *docs_[index];
    worker_.cancel_prefix(d.key_prefix() + "|");  // its computations stop; what holds its file lets go
    // Its texture may be in this frame's draw data: the tab goes after the frame is drawn.
    closed_.push_back(std::move(docs_[index]));
    docs_.erase(docs_.begin() + static_cast<std::ptrdiff_t>(index));
    current_ = -1;
}

bool App::idle() const { return !frame_waited_ && worker_.pending() == 0 && pending_opens_.empty(); }

void App::select_tensor(DocTab& d, uint32_t tensor, std::optional<Panel> panel) {
    d.selected = tensor;
    d.scroll_to_selected = true;
    if (panel) {
        d.detail = *panel;
        d.detail_requested = true;
        d.view = Panel::Values;  // the tensor tab
        d.view_requested = true;
    }
}

// ---- the frame -------------------------------------------------------------------------

void App::frame() {
    closed_.clear();  // tabs closed during the last frame, drawn by now
    frame_waited_ = false;
    for (const std::string& p : pending_opens_) open(p);
    pending_opens_.clear();
    handle_keys();
    const ImGuiViewport* vp = ImGui::GetMainViewport();
    ImGui::SetNextWindowPos(vp->WorkPos);
    ImGui::SetNextWindowSize(vp->WorkSize);
    ImGui::Begin("gguf-view", nullptr,
                 ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_MenuBar |
                     ImGuiWindowFlags_NoBringToFrontOnFocus);
    draw_menu();
    if (docs_.empty()) {
        ImGui::TextDisabled("Open a GGUF file: File > Open (Ctrl+O), drop one on the window, or name it on the command line.");
        if (!recent_.items().empty()) {
            ImGui::Spacing();
            ImGui::Text("Recent files");
            for (const std::string& r : recent_.items())
                if (ImGui::Selectable(r.c_str())) pending_opens_.push_back(r);
        }
    } else if (ImGui::BeginTabBar("files", ImGuiTabBarFlags_Reorderable | ImGuiTabBarFlags_FittingPolicyScroll)) {
        for (size_t i = 0; i < docs_.size(); ++i) {
            DocTab& d = *docs_[i];
            bool open = true;
            const ImGuiTabItemFlags flags = select_tab_ == static_cast<int>(i) ? ImGuiTabItemFlags_SetSelected : 0;
            const std::string label = fmt::format("{}###doc{}", d.title, d.id);
            if (ImGui::BeginTabItem(label.c_str(), &open, flags)) {
                current_ = static_cast<int>(i);
                draw_doc(d);
                ImGui::EndTabItem();
            }
            if (!open) {
                close_tab(i);
                --i;
            }
        }
        select_tab_ = -1;
        ImGui::EndTabBar();
    }
    ImGui::End();
    draw_file_browser();
    focus_search_ = false;  // a Ctrl+F that no search box took this frame lapses
}

void App::handle_keys() {
    const ImGuiIO& io = ImGui::GetIO();
    if (!io.KeyCtrl) return;
    if (ImGui::IsKeyPressed(GLFW_KEY_O, false)) browser_open_ = true;
    if (ImGui::IsKeyPressed(GLFW_KEY_F, false)) focus_search_ = true;
    if (ImGui::IsKeyPressed(GLFW_KEY_W, false) && current_ >= 0 && current_ < static_cast<int>(docs_.size()))
        close_tab(static_cast<size_t>(current_));
    if (ImGui::IsKeyPressed(GLFW_KEY_Q, false)) quit_ = true;
}

void App::draw_menu() {
    if (!ImGui::BeginMenuBar()) return;
    if (ImGui::BeginMenu("File")) {
        if (ImGui::MenuItem("Open...", "Ctrl+O")) browser_open_ = true;
        if (ImGui::BeginMenu("Open recent", !recent_.items().empty())) {
            for (const std::string& r : recent_.items())
                if (ImGui::MenuItem(r.c_str())) pending_opens_.push_back(r);
            ImGui::EndMenu();
        }
        if (ImGui::MenuItem("Close tab", "Ctrl+W", false, current_ >= 0 && current_ < static_cast<int>(docs_.size())))
            close_tab(static_cast<size_t>(current_));
        ImGui::Separator();
        if (ImGui::MenuItem("Quit", "Ctrl+Q")) quit_ = true;
        ImGui::EndMenu();
    }
    if (ImGui::BeginMenu("View")) {
        ImGui::MenuItem("Log count axis", nullptr, &log_counts_);
        ImGui::SliderInt("Histogram bins", &display_bins_, 16, 1024, "%d", ImGuiSliderFlags_Logarithmic | ImGuiSliderFlags_AlwaysClamp);
        display_bins_ = std::clamp(display_bins_, 16, 1024);
        ImGui::EndMenu();
    }
    const size_t pending = worker_.pending();
    if (pending) {
        ImGui::SameLine(ImGui::GetWindowWidth() - 260);
        ImGui::TextDisabled("computing: %zu job%s", pending, pending == 1 ? "" : "s");
        ImGui::SameLine();
        if (ImGui::SmallButton("Cancel all")) worker_.cancel_all();
    }
    ImGui::EndMenuBar();
}

void App::draw_file_browser() {
    if (browser_open_) {
        ImGui::OpenPopup("Open file");
        browser_listed_.clear();  // read the folder afresh
        copy_to(browser_path_, sizeof browser_path_, browser_dir_.string());
        browser_open_ = false;
    }
    const ImGuiViewport* vp = ImGui::GetMainViewport();
    ImGui::SetNextWindowSize(ImVec2(vp->WorkSize.x * 0.7f, vp->WorkSize.y * 0.7f), ImGuiCond_Appearing);
    if (!ImGui::BeginPopupModal("Open file", nullptr)) return;
    static bool gguf_only = true;
    ImGui::SetNextItemWidth(-200);
    if (ImGui::InputText("##dir", browser_path_, sizeof browser_path_, ImGuiInputTextFlags_EnterReturnsTrue)) {
        const std::filesystem::path p(browser_path_);
        std::error_code ec;
        if (std::filesystem::is_directory(p, ec)) {
            browser_dir_ = p;
        } else {
            pending_opens_.push_back(p.string());
            ImGui::CloseCurrentPopup();
        }
    }
    ImGui::SameLine();
    ImGui::Checkbox("only .gguf", &gguf_only);
    ImGui::SameLine();
    if (ImGui::Button("Cancel") || ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape), false)) ImGui::CloseCurrentPopup();
    // The folder is read again only when it or the filter changes, not every frame.
    const std::string listing_key = browser_dir_.string() + (gguf_only ? "|gguf" : "|all");
    if (listing_key != browser_listed_) {
        browser_entries_.clear();
        browser_error_.clear();
        try {
            browser_entries_ = list_directory(browser_dir_, gguf_only);
        } catch (const std::exception& e) {
            browser_error_ = e.what();
        }
        browser_listed_ = listing_key;
    }
    const std::vector<DirEntry>& entries = browser_entries_;
    if (!browser_error_.empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", browser_error_.c_str());
    if (ImGui::BeginChild("entries", ImVec2(0, 0), true)) {
        if (ImGui::Selectable("..", false, ImGuiSelectableFlags_AllowDoubleClick) && ImGui::IsMouseDoubleClicked(0)) {
            browser_dir_ = browser_dir_.parent_path();
            copy_to(browser_path_, sizeof browser_path_, browser_dir_.string());
        }
        ImGuiListClipper clipper;
        clipper.Begin(static_cast<int>(entries.size()));
        while (clipper.Step())
            for (int i = clipper.DisplayStart; i < clipper.DisplayEnd; ++i) {
                const DirEntry& e = entries[static_cast<size_t>(i)];
                const std::string label = e.directory ? e.name + "/" : e.name;
                if (ImGui::Selectable(label.c_str(), false, ImGuiSelectableFlags_AllowDoubleClick) && ImGui::IsMouseDoubleClicked(0)) {
                    if (e.directory) {
                        browser_dir_ /= e.name;
                        copy_to(browser_path_, sizeof browser_path_, browser_dir_.string());
                    } else {
                        pending_opens_.push_back((browser_dir_ / e.name).string());
                        ImGui::CloseCurrentPopup();
                    }
                }
                if (!e.directory) {
                    ImGui::SameLine(ImGui::GetWindowWidth() - 120);
                    ImGui::TextDisabled("%s", gguf::human_bytes(e.size).c_str());
                }
            }
    }
    ImGui::EndChild();
    ImGui::EndPopup();
}

bool App::task_progress(const Worker::TaskPtr& task, const std::function<void()>& retry) {
    if (!task) return false;
    switch (task->state()) {
        case Worker::State::Done: return true;
        case Worker::State::Failed:
            ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", task->error().c_str());
            if (ImGui::Button("Retry")) retry();
            return false;
        case Worker::State::Cancelled:
            ImGui::TextDisabled("cancelled");
            ImGui::SameLine();
            if (ImGui::Button("Compute")) retry();
            return false;
        case Worker::State::Queued:
        case Worker::State::Running: {
            frame_waited_ = true;
            const float f = static_cast<float>(task->progress.fraction());
            ImGui::ProgressBar(f, ImVec2(300, 0), task->state() == Worker::State::Queued ? "waiting" : nullptr);
            ImGui::SameLine();
            if (ImGui::Button("Cancel")) worker_.cancel(task->key);
            return false;
        }
    }
    return false;
}

// ---- a file's tab ----------------------------------------------------------------------

void App::poll_imatrix(DocTab& d) {
    if (d.imatrix_loading.empty()) return;
    const Worker::TaskPtr t = worker_.find(d.imatrix_loading);
    if (!t) {  // dropped (cancelled with its tab): nothing to wait for
        d.imatrix_loading.clear();
        return;
    }
    switch (t->state()) {
        case Worker::State::Done: {
            d.imatrix = *Worker::get<std::shared_ptr<quant::ImportanceMatrix>>(t);
            d.imatrix_path = d.imatrix_loading_path;
            d.imatrix_loading.clear();
            break;
        }
        case Worker::State::Failed:
        case Worker::State::Cancelled:
            d.imatrix_error = t->state() == Worker::State::Failed ? t->error() : "reading the importance matrix was cancelled";
            d.imatrix_loading.clear();
            break;
        default: frame_waited_ = true;
    }
}

void App::draw_doc(DocTab& d) {
    poll_imatrix(d);
    if (!d.doc) {
        ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "This file could not be opened:");
        ImGui::TextWrapped("%s", d.error.c_str());
        return;
    }
    if (!ImGui::BeginTabBar("views")) return;
    // A tab asked for by a click elsewhere becomes the selected one a frame later: until
    // then the others draw nothing (and start no computation for the new tensor).
    const bool switching = d.view_requested;
    auto tab = [&](const char* label, Panel p) {
        const bool force = switching && d.view == p;
        const bool open = ImGui::BeginTabItem(label, nullptr, force ? ImGuiTabItemFlags_SetSelected : 0);
        if (force) d.view_requested = false;
        if (open && switching && !force) {
            ImGui::EndTabItem();
            return false;
        }
        return open;
    };
    draw_views(tab, {{"Overview", Panel::Overview, [&] { draw_overview(d); }},
                     {"Metadata", Panel::Metadata, [&] { draw_metadata(d); }},
                     {"Tensors", Panel::Tensors, [&] { draw_tensors(d); }},
                     {"Tensor", Panel::Values, [&] { draw_tensor_detail(d); }},
                     {"Mix map", Panel::MixMap, [&] { draw_mix_map(d); }}});
    ImGui::EndTabBar();
}

void App::draw_overview(DocTab& d) {
    const Document& doc = *d.doc;
    const float left = std::min(520.0f, ImGui::GetContentRegionAvail().x * 0.4f);
    ImGui::BeginChild("facts", ImVec2(left, 0));
    if (ImGui::BeginTable("facts", 2, ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV)) {
        ImGui::TableSetupColumn("label", ImGuiTableColumnFlags_WidthFixed, 110);
        ImGui::TableSetupColumn("value", ImGuiTableColumnFlags_WidthStretch);
        for (const gguf::Fact& f : doc.facts()) fact_row(f.label.c_str(), f.value);
        ImGui::EndTable();
    }
    ImGui::Spacing();
    ImGui::Text("Bytes by type");
    if (ImGui::BeginTable("by type", 4, ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV)) {
        ImGui::TableSetupColumn("type");
        ImGui::TableSetupColumn("tensors");
        ImGui::TableSetupColumn("bytes");
        ImGui::TableSetupColumn("bits/weight");
        ImGui::TableHeadersRow();
        for (const gguf::TypeTotal& t : doc.summary().by_type) {
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(type_colour(static_cast<uint32_t>(t.type))), "%s",
                               std::string(gguf::type_info(t.type).name).c_str());
            ImGui::TableNextColumn();
            ImGui::Text("%llu", static_cast<unsigned long long>(t.tensors));
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(gguf::human_bytes(t.bytes).c_str());
            ImGui::TableNextColumn();
            ImGui::Text("%.2f", gguf::average_bits_per_weight(t.bytes, t.elements));
        }
        ImGui::EndTable();
    }
    ImGui::EndChild();
    ImGui::SameLine();
    ImGui::BeginChild("charts", ImVec2(0, 0));
    const float h = ImGui::GetContentRegionAvail().y;
    ImGui::Text("Bytes by tensor type");
    uint64_t largest = 0;
    for (const gguf::TypeTotal& t : doc.summary().by_type) largest = std::max(largest, t.bytes);
    const auto [type_unit, type_unit_name] = byte_unit(largest);
    std::vector<Bar> types;
    for (const gguf::TypeTotal& t : doc.summary().by_type)
        types.push_back({std::string(gguf::type_info(t.type).name), static_cast<double>(t.bytes) / type_unit, type_colour(static_cast<uint32_t>(t.type))});
    bar_chart("types", types, [u = type_unit_name](double v) { return fmt::format("{:.4g} {}", v, u); }, ImVec2(-1, h * 0.45f));
    ImGui::Text("Bytes by layer");
    largest = 0;
    for (const LayerBytes& l : doc.bytes_by_layer()) largest = std::max(largest, l.bytes);
    const auto [layer_unit, layer_unit_name] = byte_unit(largest);
    std::vector<Bar> layers;
    for (const LayerBytes& l : doc.bytes_by_layer())
        layers.push_back({l.layer ? std::to_string(*l.layer) : "global", static_cast<double>(l.bytes) / layer_unit});
    bar_chart("layers", layers, [u = layer_unit_name](double v) { return fmt::format("{:.4g} {}", v, u); }, ImVec2(-1, -1));
    ImGui::EndChild();
}

void App::draw_metadata(DocTab& d) {
    const gguf::Model& m = d.doc->model();
    if (focus_search_) {
        ImGui::SetKeyboardFocusHere();
        focus_search_ = false;
    }
    ImGui::SetNextItemWidth(400);
    ImGui::InputTextWithHint("##search", "search keys and values (Ctrl+F)", d.meta_query, sizeof d.meta_query);
    if (d.meta_query_done != d.meta_query) {
        d.meta_rows = search_metadata(m, d.meta_query);
        d.meta_query_done = d.meta_query;
    }
    ImGui::SameLine();
    ImGui::TextDisabled("%zu of %zu keys", d.meta_rows.size(), m.kvs().size());
    if (!ImGui::BeginTable("kv", 3, ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_Resizable | ImGuiTableFlags_ScrollY))
        return;
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("key", ImGuiTableColumnFlags_WidthFixed, 320);
    ImGui::TableSetupColumn("type", ImGuiTableColumnFlags_WidthFixed, 110);
    ImGui::TableSetupColumn("value", ImGuiTableColumnFlags_WidthStretch);
    ImGui::TableHeadersRow();
    for (uint32_t i : d.meta_rows) {
        const gguf::KeyValue& kv = m.kvs()[i];
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        const std::string key = gguf::escaped(kv.key);
        const bool is_array = kv.value.type() == gguf::ValueType::Array;
        bool expanded = false;
        if (is_array) {
            expanded = ImGui::TreeNodeEx(key.c_str(), ImGuiTreeNodeFlags_SpanFullWidth);
        } else {
            ImGui::TextUnformatted(key.c_str());
        }
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(gguf::value_type_label(kv.value).c_str());
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(gguf::value_text(kv.value, 16).c_str());
        if (!expanded) continue;
        // The elements in a virtualised list: only the rows in view are drawn.
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::TableNextColumn();
        ImGui::TableNextColumn();
        const bool tokens = kv.key == "tokenizer.ggml.tokens";
        if (tokens && !d.vocab_read) {
            d.vocab = vocabulary(m);
            d.vocab_read = true;
        }
        auto& elements = d.arrays[i];
        if (elements.empty() && !(tokens && d.vocab)) elements = array_elements(kv.value.array());
        const size_t count = tokens && d.vocab ? d.vocab->tokens.size() : elements.size();
        const float height = std::min(400.0f, ImGui::GetTextLineHeightWithSpacing() * static_cast<float>(count + 2));
        if (ImGui::BeginTable("elements", tokens && d.vocab ? 4 : 2,
                              ImGuiTableFlags_ScrollY | ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersOuter, ImVec2(0, height))) {
            ImGui::TableSetupScrollFreeze(0, 1);
            ImGui::TableSetupColumn(tokens ? "id" : "#", ImGuiTableColumnFlags_WidthFixed, 70);
            ImGui::TableSetupColumn(tokens ? "text" : "value");
            if (tokens && d.vocab) {
                ImGui::TableSetupColumn("score", ImGuiTableColumnFlags_WidthFixed, 90);
                ImGui::TableSetupColumn("type", ImGuiTableColumnFlags_WidthFixed, 80);
            }
            ImGui::TableHeadersRow();
            ImGuiListClipper clipper;
            clipper.Begin(static_cast<int>(count));
            while (clipper.Step())
                for (int r = clipper.DisplayStart; r < clipper.DisplayEnd; ++r) {
                    const size_t k = static_cast<size_t>(r);
                    ImGui::TableNextRow();
                    ImGui::TableNextColumn();
                    ImGui::Text("%d", r);
                    ImGui::TableNextColumn();
                    if (tokens && d.vocab) {
                        ImGui::TextUnformatted(gguf::quoted(d.vocab->tokens[k].str()).c_str());
                        ImGui::TableNextColumn();
                        if (d.vocab->scores) ImGui::TextUnformatted(gguf::value_text(d.vocab->scores->at(k)).c_str());
                        ImGui::TableNextColumn();
                        if (d.vocab->types) {
                            const gguf::Value t = d.vocab->types->at(k);
                            ImGui::TextUnformatted(t.is_integer() ? std::string(token_type_name(t.as_int())).c_str() : gguf::value_text(t).c_str());
                        }
                    } else {
                        ImGui::TextUnformatted(gguf::value_text(elements[k], 16).c_str());
                    }
                }
            ImGui::EndTable();
        }
        ImGui::TreePop();
    }
    ImGui::EndTable();
}

void App::draw_tensors(DocTab& d) {
    const Document& doc = *d.doc;
    if (focus_search_) {
        ImGui::SetKeyboardFocusHere();
        focus_search_ = false;
    }
    ImGui::SetNextItemWidth(400);
    ImGui::InputTextWithHint("##filter", "filter by name or type (Ctrl+F)", d.tensor_filter, sizeof d.tensor_filter);
    ImGui::SameLine();
    ImGui::Checkbox("group by layer", &d.group_layers);
    if (d.tensor_filter_done != d.tensor_filter || d.sort_changed) {
        d.tensor_rows = select_tensors(doc.tensors(), d.tensor_filter, d.sort_column, d.ascending);
        d.tensor_filter_done = d.tensor_filter;
        d.sort_changed = false;
    }
    ImGui::SameLine();
    ImGui::TextDisabled("%zu of %zu tensors; arrows move, Enter opens", d.tensor_rows.size(), doc.tensors().size());

    // Arrow keys move the selection through the rows shown, Enter opens the tensor.
    const ImGuiIO& io = ImGui::GetIO();
    if (!io.WantTextInput && ImGui::IsWindowFocused(ImGuiFocusedFlags_RootAndChildWindows) && !d.tensor_rows.empty()) {
        auto it = d.selected ? std::find(d.tensor_rows.begin(), d.tensor_rows.end(), *d.selected) : d.tensor_rows.end();
        const long pos = it == d.tensor_rows.end() ? -1 : static_cast<long>(it - d.tensor_rows.begin());
        long next = pos;
        if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_DownArrow))) next = std::min<long>(pos + 1, static_cast<long>(d.tensor_rows.size()) - 1);
        if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_UpArrow))) next = std::max<long>(pos - 1, 0);
        if (next != pos) select_tensor(d, d.tensor_rows[static_cast<size_t>(next)], std::nullopt);
        if (d.selected && ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Enter), false)) select_tensor(d, *d.selected, d.detail);
    }

    const ImGuiTableFlags flags = ImGuiTableFlags_Sortable | ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV |
                                  ImGuiTableFlags_Resizable | ImGuiTableFlags_ScrollY | ImGuiTableFlags_Hideable;
    if (!ImGui::BeginTable("tensors", 7, flags)) return;
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("#", ImGuiTableColumnFlags_DefaultSort | ImGuiTableColumnFlags_WidthFixed, 50, static_cast<ImGuiID>(TensorColumn::Index));
    ImGui::TableSetupColumn("name", ImGuiTableColumnFlags_WidthStretch, 0, static_cast<ImGuiID>(TensorColumn::Name));
    ImGui::TableSetupColumn("type", ImGuiTableColumnFlags_WidthFixed, 70, static_cast<ImGuiID>(TensorColumn::Type));
    ImGui::TableSetupColumn("shape", ImGuiTableColumnFlags_WidthFixed, 170, static_cast<ImGuiID>(TensorColumn::Shape));
    ImGui::TableSetupColumn("elements", ImGuiTableColumnFlags_WidthFixed, 110, static_cast<ImGuiID>(TensorColumn::Elements));
    ImGui::TableSetupColumn("bytes", ImGuiTableColumnFlags_WidthFixed, 100, static_cast<ImGuiID>(TensorColumn::Bytes));
    ImGui::TableSetupColumn("offset", ImGuiTableColumnFlags_WidthFixed, 120, static_cast<ImGuiID>(TensorColumn::Offset));
    ImGui::TableHeadersRow();
    if (ImGuiTableSortSpecs* s = ImGui::TableGetSortSpecs(); s && s->SpecsDirty) {
        if (s->SpecsCount > 0) {
            d.sort_column = static_cast<TensorColumn>(s->Specs[0].ColumnUserID);
            d.ascending = s->Specs[0].SortDirection != ImGuiSortDirection_Descending;
            d.sort_changed = true;
        }
        s->SpecsDirty = false;
    }
    auto row = [&](uint32_t i) {
        const TensorRow& r = doc.tensors()[i];
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        const bool selected = d.selected && *d.selected == i;
        if (ImGui::Selectable(fmt::format("{}##t{}", i, i).c_str(), selected,
                              ImGuiSelectableFlags_SpanAllColumns | ImGuiSelectableFlags_AllowDoubleClick)) {
            select_tensor(d, i, ImGui::IsMouseDoubleClicked(0) ? std::optional<Panel>(d.detail) : std::nullopt);
        }
        if (selected && d.scroll_to_selected) {
            ImGui::SetScrollHereY();
            d.scroll_to_selected = false;
        }
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(r.name.c_str());
        ImGui::TableNextColumn();
        ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(type_colour(static_cast<uint32_t>(r.type))), "%s",
                           std::string(gguf::type_info(r.type).name).c_str());
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(r.shape.c_str());
        ImGui::TableNextColumn();
        ImGui::Text("%llu", static_cast<unsigned long long>(r.elements));
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(gguf::human_bytes(r.bytes).c_str());
        ImGui::TableNextColumn();
        ImGui::Text("%llu", static_cast<unsigned long long>(r.offset));
    };
    if (!d.group_layers) {
        ImGuiListClipper clipper;
        clipper.Begin(static_cast<int>(d.tensor_rows.size()));
        // Keep the selected row inside the clipper's range when it must scroll to it.
        if (d.scroll_to_selected && d.selected) {
            auto it = std::find(d.tensor_rows.begin(), d.tensor_rows.end(), *d.selected);
            if (it != d.tensor_rows.end()) clipper.ForceDisplayRangeByIndices(static_cast<int>(it - d.tensor_rows.begin()),
                                                                               static_cast<int>(it - d.tensor_rows.begin()) + 1);
        }
        while (clipper.Step())
            for (int k = clipper.DisplayStart; k < clipper.DisplayEnd; ++k) row(d.tensor_rows[static_cast<size_t>(k)]);
    } else {
        // Layers as tree nodes, in layer order; the globals first.
        std::map<std::optional<uint32_t>, std::vector<uint32_t>> groups;
        for (uint32_t i : d.tensor_rows) groups[doc.tensors()[i].layer].push_back(i);
        for (const auto& [layer, members] : groups) {
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            uint64_t bytes = 0;
            for (uint32_t i : members) bytes += doc.tensors()[i].bytes;
            const std::string label = layer ? fmt::format("blk.{}", *layer) : std::string("global");
            const bool open = ImGui::TreeNodeEx(label.c_str(), ImGuiTreeNodeFlags_SpanFullWidth);
            ImGui::TableNextColumn();
            ImGui::TextDisabled("%zu tensors, %s", members.size(), gguf::human_bytes(bytes).c_str());
            if (open) {
                for (uint32_t i : members) row(i);
                ImGui::TreePop();
            }
        }
    }
    ImGui::EndTable();
}

Worker::TaskPtr App::values_task(DocTab& d, uint32_t tensor, Ask ask) {
    const std::string key = fmt::format("{}|values|{}", d.key_prefix(), tensor);
    if (ask == Ask::Find) return worker_.find(key);
    std::shared_ptr<Document> doc = d.doc;
    const int threads = worker_threads();
    auto job = [doc, tensor, threads](Progress& p) -> std::any {
        ValueOptions o;
        o.threads = threads;
        return analyze_values(doc->model(), doc->model().tensors()[tensor], o, &p);
    };
    return ask == Ask::Retry ? worker_.retry(key, job) : worker_.request(key, job);
}

Worker::TaskPtr App::error_task(DocTab& d, uint32_t tensor, Ask ask) {
    const int threads = worker_threads();
    std::string key;
    std::function<std::any(Progress&)> job;
    if (d.use_compare && d.compare) {
        key = fmt::format("{}|compare|{}|{}", d.key_prefix(), d.compare->path(), tensor);
        std::shared_ptr<Document> a = d.doc, b = d.compare;
        job = [a, b, tensor, threads](Progress& p) -> std::any {
            const gguf::Model::Tensor& ta = a->model().tensors()[tensor];
            const gguf::Model::Tensor* tb = b->model().find_tensor(ta.info->name);
            if (!tb) throw std::invalid_argument(fmt::format("{} has no tensor {}", b->path(), ta.info->name));
            return compare_tensors(a->model(), ta, b->model(), *tb, threads, &p);
        };
    } else {
        key = fmt::format("{}|error|{}|{}|{}", d.key_prefix(), tensor, gguf::type_info(d.error_type).name, d.imatrix_path);
        std::shared_ptr<Document> doc = d.doc;
        std::shared_ptr<quant::ImportanceMatrix> im = d.imatrix;
        const gguf::TypeId target = d.error_type;
        job = [doc, im, tensor, target, threads](Progress& p) -> std::any {
            const gguf::Model::Tensor& t = doc->model().tensors()[tensor];
            const std::span<const float> w = im ? importance_for(*im, t) : std::span<const float>();
            return analyze_error(doc->model(), t, target, w, threads, &p);
        };
    }
    switch (ask) {
        case Ask::Find: return worker_.find(key);
        case Ask::Retry: return worker_.retry(key, std::move(job));
        case Ask::Request: break;
    }
    return worker_.request(key, std::move(job));
}

void App::draw_tensor_detail(DocTab& d) {
    if (!d.selected) {
        ImGui::TextDisabled("Choose a tensor in the Tensors tab or the mix map.");
        return;
    }
    const uint32_t t = *d.selected;
    const TensorRow& r = d.doc->tensors()[t];
    ImGui::Text("%s", r.name.c_str());
    ImGui::SameLine();
    ImGui::TextDisabled("%s  %s  %s  %.2f bits/weight", std::string(gguf::type_info(r.type).name).c_str(), r.shape.c_str(),
                        gguf::human_bytes(r.bytes).c_str(), r.bits_per_weight);
    if (!ImGui::BeginTabBar("detail")) return;
    auto tab = [&](const char* label, Panel p) {
        const bool force = d.detail_requested && d.detail == p;
        const bool open = ImGui::BeginTabItem(label, nullptr, force ? ImGuiTabItemFlags_SetSelected : 0);
        if (open && d.detail_requested && !force) {  // the old view, for a frame: draw nothing
            ImGui::EndTabItem();
            return false;
        }
        if (open) d.detail = p;
        return open;
    };
    draw_views(tab, {{"Values", Panel::Values, [&] { draw_values(d, t); }},
                     {"Heat map", Panel::HeatMap, [&] { draw_heat_map(d, t); }},
                     {"Quantization error", Panel::Error, [&] { draw_error(d, t); }},
                     {"Importance", Panel::Importance, [&] { draw_importance(d, t); }}});
    d.detail_requested = false;
    ImGui::EndTabBar();
}

void App::draw_histogram(const char* id, const Histogram& fine, HistogramStyle style) {
    ImGui::Checkbox("log counts", &log_counts_);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(200);
    ImGui::SliderInt("bins", &display_bins_, 16, 1024, "%d", ImGuiSliderFlags_Logarithmic | ImGuiSliderFlags_AlwaysClamp);
    display_bins_ = std::clamp(display_bins_, 16, 1024);
    style.log_counts = log_counts_;
    histogram_plot(id, fine.rebinned(static_cast<size_t>(display_bins_)), style, ImVec2(-1, -1));
}

void App::draw_values(DocTab& d, uint32_t tensor) {
    const Worker::TaskPtr task = values_task(d, tensor, Ask::Request);
    if (!task_progress(task, [&] { values_task(d, tensor, Ask::Retry); })) return;
    const ValueAnalysis& v = *Worker::get<ValueAnalysis>(task);
    const ValueStats& s = v.stats;
    const double zeros = s.count ? 100.0 * static_cast<double>(s.zeros) / static_cast<double>(s.count) : 0.0;
    figure_row("stats", {"min", "max", "mean", "std dev", "zeros", "NaN", "Inf", "values"},
               {fmt::format("{:.6g}", s.min), fmt::format("{:.6g}", s.max), fmt::format("{:.6g}", s.mean()), fmt::format("{:.6g}", s.stddev()),
                fmt::format("{} ({:.2f}%)", s.zeros, zeros), fmt::format("{}", s.nans), fmt::format("{}", s.infs), fmt::format("{}", s.count)});
    draw_histogram("values", v.histogram, HistogramStyle{});
}

void App::draw_heat_map(DocTab& d, uint32_t tensor) {
    const Worker::TaskPtr task = values_task(d, tensor, Ask::Request);
    if (!task_progress(task, [&] { values_task(d, tensor, Ask::Retry); })) return;
    const ValueAnalysis& v = *Worker::get<ValueAnalysis>(task);
    if (!v.heat) {
        ImGui::TextDisabled("A heat map needs a tensor of two or more dimensions.");
        return;
    }
    const HeatMap& h = *v.heat;
    ImGui::RadioButton("mean", &heat_mode_, 0);
    ImGui::SameLine();
    ImGui::RadioButton("root mean square", &heat_mode_, 1);
    ImGui::SameLine();
    ImGui::RadioButton("largest |x|", &heat_mode_, 2);
    help_marker("Each cell averages a block of the matrix (rows down, columns across; expert matrices stacked as rows).");
    const std::vector<float>& cells = heat_mode_ == 0 ? h.mean : heat_mode_ == 1 ? h.rms : h.max_abs;
    const bool diverging = heat_mode_ == 0;
    const std::string key = fmt::format("{}|{}", task->key, heat_mode_);
    if (d.texture_key != key) {
        double lo = 0, hi = 0;
        for (float c : cells)
            if (std::isfinite(c)) {
                lo = std::min(lo, static_cast<double>(c));
                hi = std::max(hi, static_cast<double>(c));
            }
        if (diverging) hi = std::max(std::abs(lo), std::abs(hi)), lo = -hi;
        if (hi <= lo) hi = lo + 1;
        std::vector<ImU32> pixels(cells.size());
        for (size_t i = 0; i < cells.size(); ++i) {
            const float t = static_cast<float>((cells[i] - lo) / (hi - lo));
            pixels[i] = !std::isfinite(cells[i]) ? IM_COL32(128, 128, 128, 255) : diverging ? diverging_colour(t) : sequential_colour(t);
        }
        if (!d.texture) glGenTextures(1, &d.texture);
        glBindTexture(GL_TEXTURE_2D, d.texture);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
        glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
        glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, static_cast<GLsizei>(h.cols), static_cast<GLsizei>(h.rows), 0, GL_RGBA, GL_UNSIGNED_BYTE,
                     pixels.data());
        d.texture_key = key;
        d.heat_lo = lo;
        d.heat_hi = hi;
    }
    const TensorRow& r = d.doc->tensors()[tensor];
    const uint64_t rows = r.elements / std::max<uint64_t>(1, d.doc->model().tensors()[tensor].info->shape[0]);
    const uint64_t cols = d.doc->model().tensors()[tensor].info->shape[0];
    ImGui::TextDisabled("%llu x %llu values in %u x %u cells", static_cast<unsigned long long>(rows), static_cast<unsigned long long>(cols), h.rows, h.cols);
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const float legend_w = 110;
    // The matrix's aspect kept within the space left of the legend.
    const float scale = std::min((avail.x - legend_w - 10) / static_cast<float>(h.cols), (avail.y - 4) / static_cast<float>(h.rows));
    const ImVec2 size(std::max(1.0f, static_cast<float>(h.cols) * scale), std::max(1.0f, static_cast<float>(h.rows) * scale));
    const ImVec2 p = ImGui::GetCursorScreenPos();
    ImGui::Image(reinterpret_cast<ImTextureID>(static_cast<intptr_t>(d.texture)), size);
    if (ImGui::IsItemHovered()) {
        const ImVec2 m = ImGui::GetIO().MousePos;
        const uint32_t cx = std::min(h.cols - 1, static_cast<uint32_t>((m.x - p.x) / size.x * static_cast<float>(h.cols)));
        const uint32_t cy = std::min(h.rows - 1, static_cast<uint32_t>((m.y - p.y) / size.y * static_cast<float>(h.rows)));
        const size_t i = size_t{cy} * h.cols + cx;
        const auto first = [](uint64_t k, uint64_t n, uint32_t cells_n) { return (k * n + cells_n - 1) / cells_n; };
        ImGui::SetTooltip("rows %llu-%llu, columns %llu-%llu\nmean %.5g\nrms %.5g\nlargest |x| %.5g",
                          static_cast<unsigned long long>(first(cy, rows, h.rows)), static_cast<unsigned long long>(first(cy + 1, rows, h.rows) - 1),
                          static_cast<unsigned long long>(first(cx, cols, h.cols)), static_cast<unsigned long long>(first(cx + 1, cols, h.cols) - 1),
                          static_cast<double>(h.mean[i]), static_cast<double>(h.rms[i]), static_cast<double>(h.max_abs[i]));
    }
    ImGui::SameLine();
    colour_legend("legend", d.heat_lo, d.heat_hi, diverging, legend_w, size.y);
}

void App::draw_error(DocTab& d, uint32_t tensor) {
    // Settings: the target type (or a second file to compare with) and the imatrix.
    ImGui::BeginDisabled(d.use_compare);
    ImGui::SetNextItemWidth(120);
    if (ImGui::BeginCombo("target type", std::string(gguf::type_info(d.error_type).name).c_str())) {
        for (gguf::TypeId t : target_types())
            if (ImGui::Selectable(std::string(gguf::type_info(t).name).c_str(), t == d.error_type)) d.error_type = t;
        ImGui::EndCombo();
    }
    ImGui::SameLine();
    ImGui::SetNextItemWidth(360);
    ImGui::InputTextWithHint("##imatrix", "importance matrix file (optional)", d.imatrix_input, sizeof d.imatrix_input);
    ImGui::SameLine();
    if (d.imatrix_loading.empty()) {
        if (ImGui::Button(d.imatrix ? "Reload imatrix" : "Load imatrix")) {
            // Read on the worker: an MoE model's matrix can be hundreds of MB.
            static uint64_t loads = 0;
            const std::string path = d.imatrix_input;
            d.imatrix_loading = fmt::format("{}|imatrix|{}", d.key_prefix(), ++loads);
            d.imatrix_loading_path = path;
            d.imatrix_error.clear();
            worker_.retry(d.imatrix_loading, [path](Progress&) -> std::any {
                return std::make_shared<quant::ImportanceMatrix>(quant::ImportanceMatrix::load(path));
            });
        }
    } else {
        ImGui::TextDisabled("reading the importance matrix...");
    }
    if (d.imatrix) {
        ImGui::SameLine();
        if (ImGui::Button("Drop imatrix")) {
            d.imatrix.reset();
            d.imatrix_path.clear();
        }
    }
    ImGui::EndDisabled();
    ImGui::SetNextItemWidth(480);
    ImGui::InputTextWithHint("##compare", "or compare with the same model in another file", d.compare_input, sizeof d.compare_input);
    ImGui::SameLine();
    if (ImGui::Button("Open for comparison")) {
        try {
            d.compare = Document::open(d.compare_input);
            d.compare_error.clear();
            d.use_compare = true;
        } catch (const std::exception& e) {
            d.compare_error = e.what();
        }
    }
    if (d.compare) {
        ImGui::SameLine();
        ImGui::Checkbox(fmt::format("compare with {}", d.compare->title()).c_str(), &d.use_compare);
    }
    for (const std::string* e : {&d.imatrix_error, &d.compare_error})
        if (!e->empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", e->c_str());

    const Worker::TaskPtr task = error_task(d, tensor, Ask::Request);
    if (!task_progress(task, [&] { error_task(d, tensor, Ask::Retry); })) return;
    const ErrorAnalysis& e = *Worker::get<ErrorAnalysis>(task);
    const std::string what = d.use_compare && d.compare ? fmt::format("this file - {}", d.compare->title())
                                                        : fmt::format("original - round trip through {}{}", gguf::type_info(d.error_type).name,
                                                                      d.imatrix ? " with the importance matrix" : "");
    ImGui::Text("%s", what.c_str());
    const double snr = e.stats.snr_db();
    figure_row("errstats", {"RMSE", "largest |error|", "SNR", "bits/weight", "values"},
               {fmt::format("{:.6g}", e.stats.rmse()), fmt::format("{:.6g}", e.stats.max_abs_error),
                std::isinf(snr) ? std::string("exact") : fmt::format("{:.2f} dB", snr), fmt::format("{:.3f}", e.bits_per_weight),
                fmt::format("{}", e.stats.values)});
    HistogramStyle style;
    style.x_label = "error";
    style.colour = IM_COL32(230, 120, 90, 255);
    draw_histogram("errors", e.histogram, style);
}

void App::draw_importance(DocTab& d, uint32_t tensor) {
    if (!d.imatrix) {
        ImGui::TextDisabled("Load an importance matrix (Quantization error tab, or --imatrix) to see its columns here.");
        return;
    }
    // Looked up once per tensor and matrix, not every frame.
    if (d.importance_tensor != tensor || d.importance_of != d.imatrix) {
        d.importance_tensor = tensor;
        d.importance_of = d.imatrix;
        d.importance_error.clear();
        d.importance_values.clear();
        d.importance_top.clear();
        try {
            const std::span<const float> w = importance_for(*d.imatrix, d.doc->model().tensors()[tensor]);
            d.importance_values.assign(w.begin(), w.end());
            d.importance_top = top_columns(w, 24);
        } catch (const std::exception& e) {
            d.importance_error = e.what();
        }
    }
    if (!d.importance_error.empty()) {
        ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", d.importance_error.c_str());
        return;
    }
    if (d.importance_values.empty()) {
        ImGui::TextDisabled("%s has no entry for this tensor.", d.imatrix_path.c_str());
        return;
    }
    const std::vector<float>& values = d.importance_values;
    const std::vector<ColumnImportance>& top = d.importance_top;
    const float list_w = 220;
    ImGui::BeginChild("plot", ImVec2(ImGui::GetContentRegionAvail().x - list_w, 0));
    column_plot("importance", values, "column", "importance", ImVec2(-1, -1));
    ImGui::EndChild();
    ImGui::SameLine();
    ImGui::BeginChild("top", ImVec2(0, 0));
    ImGui::Text("Most important columns");
    if (ImGui::BeginTable("top", 2, ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV)) {
        ImGui::TableSetupColumn("column");
        ImGui::TableSetupColumn("importance");
        ImGui::TableHeadersRow();
        for (const ColumnImportance& c : top) {
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::Text("%llu", static_cast<unsigned long long>(c.column));
            ImGui::TableNextColumn();
            ImGui::Text("%.5g", static_cast<double>(c.value));
        }
        ImGui::EndTable();
    }
    ImGui::EndChild();
}

void App::draw_mix_map(DocTab& d) {
    const Document& doc = *d.doc;
    const MixMap& mix = doc.mix_map();
    if (mix.roles.empty()) {
        ImGui::TextDisabled("No per-layer tensors (blk.N.*) in this file.");
        return;
    }
    ImGui::RadioButton("type", &d.mix_colour, 0);
    ImGui::SameLine();
    ImGui::RadioButton("bits per weight", &d.mix_colour, 1);
    ImGui::SameLine();
    ImGui::RadioButton("quantization error (SNR)", &d.mix_colour, 2);
    if (d.mix_colour == 2) {
        ImGui::SameLine();
        const std::string label = d.use_compare && d.compare ? fmt::format("Compute all against {}", d.compare->title())
                                                             : fmt::format("Compute all as {}", gguf::type_info(d.error_type).name);
        if (ImGui::Button(label.c_str()) || d.compute_mix)
            for (int64_t c : mix.cells)
                if (c >= 0) error_task(d, static_cast<uint32_t>(c), Ask::Retry);
        d.compute_mix = false;
        help_marker("The error setting is the Quantization error tab's: a target type (and imatrix), or a second file.");
    }
    // Per-cell value and range for the bits and error colourings.
    std::vector<double> value(mix.cells.size(), std::nan(""));
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < mix.cells.size(); ++i) {
        if (mix.cells[i] < 0) continue;
        const uint32_t t = static_cast<uint32_t>(mix.cells[i]);
        if (d.mix_colour == 1) {
            value[i] = doc.tensors()[t].bits_per_weight;
        } else if (d.mix_colour == 2) {
            if (const ErrorAnalysis* e = Worker::get<ErrorAnalysis>(error_task(d, t, Ask::Find)))
                value[i] = std::isinf(e->stats.snr_db()) ? std::nan("") : e->stats.snr_db();
        }
        if (std::isfinite(value[i])) {
            lo = std::min(lo, value[i]);
            hi = std::max(hi, value[i]);
        }
    }
    if (!(hi > lo)) {
        lo = std::isfinite(lo) ? lo - 1 : 0;
        hi = lo + 2;
    }
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const float legend_w = d.mix_colour == 0 ? 150 : 110;
    const float label_w = 60, header_h = ImGui::GetTextLineHeight() * 1.6f;
    const float cell_w = std::max(14.0f, (avail.x - legend_w - label_w - 20) / static_cast<float>(mix.roles.size()));
    const float cell_h = std::clamp((avail.y - header_h - 8) / static_cast<float>(std::max(1u, mix.layers)), 6.0f, 28.0f);
    ImGui::BeginChild("grid", ImVec2(avail.x - legend_w - 10, 0), false, ImGuiWindowFlags_HorizontalScrollbar);
    const ImVec2 origin = ImGui::GetCursorScreenPos();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 total(label_w + cell_w * static_cast<float>(mix.roles.size()), header_h + cell_h * static_cast<float>(mix.layers));
    ImGui::InvisibleButton("##grid", total);
    const bool hovered = ImGui::IsItemHovered(), clicked = ImGui::IsItemClicked(0);
    for (size_t c = 0; c < mix.roles.size(); ++c) {
        const char* role = mix.roles[c].c_str();
        const float tw = ImGui::CalcTextSize(role).x;
        const float x = origin.x + label_w + cell_w * (static_cast<float>(c) + 0.5f) - std::min(tw, cell_w - 2) * 0.5f;
        dl->PushClipRect(ImVec2(origin.x + label_w + cell_w * static_cast<float>(c), origin.y),
                         ImVec2(origin.x + label_w + cell_w * static_cast<float>(c + 1), origin.y + header_h), true);
        dl->AddText(ImVec2(x, origin.y), IM_COL32(210, 210, 210, 255), role);
        dl->PopClipRect();
    }
    const int label_every = std::max(1, static_cast<int>(std::ceil(ImGui::GetTextLineHeight() / cell_h)));
    for (uint32_t l = 0; l < mix.layers; ++l) {
        const float y = origin.y + header_h + cell_h * static_cast<float>(l);
        if (static_cast<int>(l) % label_every == 0)
            dl->AddText(ImVec2(origin.x, y + (cell_h - ImGui::GetTextLineHeight()) * 0.5f), IM_COL32(210, 210, 210, 255),
                        fmt::format("blk.{}", l).c_str());
        for (size_t c = 0; c < mix.roles.size(); ++c) {
            const int64_t t = mix.at(l, c);
            const ImVec2 a(origin.x + label_w + cell_w * static_cast<float>(c) + 1, y + 1);
            const ImVec2 b(a.x + cell_w - 2, a.y + cell_h - 2);
            if (t < 0) {
                dl->AddRect(a, b, IM_COL32(70, 70, 70, 255));
                continue;
            }
            const double v = value[l * mix.roles.size() + c];
            ImU32 colour;
            if (d.mix_colour == 0)
                colour = type_colour(static_cast<uint32_t>(doc.tensors()[static_cast<size_t>(t)].type));
            else
                colour = std::isfinite(v) ? sequential_colour(static_cast<float>((v - lo) / (hi - lo))) : IM_COL32(90, 90, 90, 255);
            dl->AddRectFilled(a, b, colour);
            if (d.selected && *d.selected == static_cast<uint32_t>(t)) dl->AddRect(a, b, IM_COL32(255, 255, 255, 255), 0, 0, 2);
        }
    }
    if (hovered) {
        const ImVec2 m = ImGui::GetIO().MousePos;
        const float fx = (m.x - origin.x - label_w) / cell_w, fy = (m.y - origin.y - header_h) / cell_h;
        if (fx >= 0 && fy >= 0 && fx < static_cast<float>(mix.roles.size()) && fy < static_cast<float>(mix.layers)) {
            const uint32_t l = static_cast<uint32_t>(fy);
            const size_t c = static_cast<size_t>(fx);
            const int64_t t = mix.at(l, c);
            if (t >= 0) {
                const TensorRow& r = doc.tensors()[static_cast<size_t>(t)];
                const double v = value[l * mix.roles.size() + c];
                ImGui::SetTooltip("%s\n%s  %s\n%.2f bits/weight%s", r.name.c_str(), std::string(gguf::type_info(r.type).name).c_str(),
                                  r.shape.c_str(), r.bits_per_weight,
                                  d.mix_colour == 2 && std::isfinite(v) ? fmt::format("\nSNR {:.2f} dB", v).c_str() : "");
                if (clicked) select_tensor(d, static_cast<uint32_t>(t), d.mix_colour == 2 ? Panel::Error : d.detail);
            }
        }
    }
    ImGui::EndChild();
    ImGui::SameLine();
    ImGui::BeginChild("legend", ImVec2(0, 0));
    if (d.mix_colour == 0) {
        for (const gguf::TypeTotal& t : doc.summary().by_type) {
            ImGui::ColorButton(std::string(gguf::type_info(t.type).name).c_str(),
                               ImGui::ColorConvertU32ToFloat4(type_colour(static_cast<uint32_t>(t.type))), ImGuiColorEditFlags_NoTooltip,
                               ImVec2(14, 14));
            ImGui::SameLine();
            ImGui::TextUnformatted(std::string(gguf::type_info(t.type).name).c_str());
        }
    } else {
        ImGui::TextUnformatted(d.mix_colour == 1 ? "bits/weight" : "SNR (dB)");
        colour_legend("scale", lo, hi, false, legend_w, std::min(400.0f, ImGui::GetContentRegionAvail().y));
    }
    ImGui::EndChild();
}

}  // namespace viewer::ui
